import assert from "node:assert/strict";
import { makeImage, writeOciLayout } from "../../tests/harness/oci.ts";
import { hasSkopeo, skopeo } from "../../tests/harness/skopeo.ts";
import { startPushStack } from "./_test_util.ts";
import { externalTest } from "../../tests/harness/external.ts";

externalTest({
  name: "proxy: a real skopeo push lands blobs in the origin and the tag in build-index",
  ignore: !hasSkopeo(),
  async fn() {
    const dir = await Deno.makeTempDir();
    const stack = await startPushStack(`${dir}/stack`);
    try {
      const image = await makeImage({ layerSizes: [200_000, 30_000, 512] });
      await writeOciLayout(`${dir}/layout`, image, "v1");
      const dest = `127.0.0.1:${stack.proxy.port}/library/skopeo-test:v1`;

      await skopeo([
        "copy",
        "--dest-tls-verify=false",
        `oci:${dir}/layout:v1`,
        `docker://${dest}`,
      ], { home: dir });

      // The tag points at our manifest, byte for byte (no conversion on the way).
      const tag = await fetch(
        `${stack.buildIndex.url}/tags/${encodeURIComponent("library/skopeo-test:v1")}`,
      );
      assert.equal(await tag.text(), image.manifest.digest.toString());
      // Every blob and the manifest are in the origin cluster (pushed under namespace TODO).
      for (const blob of [...image.layers, image.config, image.manifest]) {
        assert.deepEqual(await stack.originClient.stat("TODO", blob.digest), {
          size: blob.bytes.length,
        });
      }

      // Reading back through the proxy gives the same manifest and, copied out, the same blobs.
      const raw = await skopeo(["inspect", "--raw", "--tls-verify=false", `docker://${dest}`], {
        home: dir,
      });
      assert.equal(raw, new TextDecoder().decode(image.manifest.bytes));
      await skopeo([
        "copy",
        "--src-tls-verify=false",
        `docker://${dest}`,
        `oci:${dir}/back:v1`,
      ], { home: dir });
      for (const blob of [...image.layers, image.config]) {
        const copied = await Deno.readFile(`${dir}/back/blobs/sha256/${blob.digest.hex}`);
        assert.deepEqual(copied, blob.bytes);
      }
    } finally {
      await stack.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
