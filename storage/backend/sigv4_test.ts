import assert from "node:assert/strict";
import { signRequest, uriEncode } from "./sigv4.ts";

Deno.test("sigv4: AWS's documented GetObject example signs to its published signature", async () => {
  // The example of the S3 docs ("Signature Calculations for the Authorization Header").
  const headers = await signRequest({
    method: "GET",
    url: new URL("https://examplebucket.s3.amazonaws.com/test.txt"),
    region: "us-east-1",
    credentials: {
      accessKeyId: "AKIAIOSFODNN7EXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    },
    headers: { Range: "bytes=0-9" },
    date: new Date("2013-05-24T00:00:00Z"),
  });
  assert.equal(
    headers.authorization,
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
      "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, " +
      "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
  );
  assert.equal(headers["x-amz-date"], "20130524T000000Z");
  assert.equal(headers.host, "examplebucket.s3.amazonaws.com");
  assert.ok(!Object.values(headers).some((v) => v.includes("wJalrXUtnFEMI")), "no secret sent");
});

Deno.test("sigv4: a session token is sent and signed; uriEncode keeps only unreserved", async () => {
  const headers = await signRequest({
    method: "PUT",
    url: new URL("http://127.0.0.1:9000/b/k?partNumber=1&uploadId=a%2Fb"),
    region: "eu-west-1",
    credentials: { accessKeyId: "AK", secretAccessKey: "SK", sessionToken: "TOKEN" },
    payloadHash: "UNSIGNED-PAYLOAD",
  });
  assert.equal(headers["x-amz-security-token"], "TOKEN");
  assert.match(
    headers.authorization,
    /SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,/,
  );
  assert.equal(uriEncode("a b/c*~!"), "a%20b%2Fc%2A~%21");
});
