/**
 * One HTTP route of a Kraken protocol: its method and path template, shared by the server that
 * registers it and the clients that call it, so both name their spans `{METHOD} {template}`
 * from the same constant.
 *
 * Templates use the router's syntax (`http/router.ts`): `{name}` is one raw path segment and
 * `{name+}` the rest of the path, slashes included.
 *
 * @example
 * ```ts
 * import { expand, route } from "./route.ts";
 * const TAG = route("GET", "/tags/{tag}");
 * expand(TAG, { tag: "repo%3Alatest" }); // "/tags/repo%3Alatest"
 * TAG.spanName; // "GET /tags/{tag}"
 * ```
 *
 * @module
 */

/** A method and path template; see the module doc. */
export interface Route {
  /** Upper-case HTTP method. */
  readonly method: string;
  /** Path template in the router's syntax. */
  readonly template: string;
  /** `{METHOD} {template}`: the span name on both ends of the call. */
  readonly spanName: string;
}

/** Declares a route. */
export function route(method: string, template: string): Route {
  return Object.freeze({
    method: method.toUpperCase(),
    template,
    spanName: `${method.toUpperCase()} ${template}`,
  });
}

/** The names of a template's parameters, in order (`+` stripped). */
export function templateParams(template: string): string[] {
  return [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1].replace(/\+$/, ""));
}

/**
 * Fills a route's template with already-escaped parameter values, giving the request path
 * (without query). Escaping is the caller's: namespaces and tags are path-escaped, `{x+}`
 * values keep their slashes.
 *
 * @throws {TypeError} when a parameter is missing or not in the template.
 */
export function expand(r: Route, params: Record<string, string>): string {
  const names = templateParams(r.template);
  for (const key of Object.keys(params)) {
    if (!names.includes(key)) throw new TypeError(`${r.spanName}: no parameter ${key}`);
  }
  return r.template.replace(/\{([^}]+)\}/g, (_, raw: string) => {
    const value = params[raw.replace(/\+$/, "")];
    if (value === undefined) throw new TypeError(`${r.spanName}: parameter ${raw} missing`);
    return value;
  });
}
