/**
 * A small HTTP router with Hono-style middleware, shared by every role.
 *
 * Routes are templates such as `/namespace/{namespace}/blobs/{digest}`; `{name}` matches one raw
 * (still percent-encoded) path segment and `{name+}` one or more segments, as Docker repository names
 * need. Parameters are percent-decoded once after matching, like upstream's chi routers, so an encoded
 * `%2F` is a `/` inside one parameter. The matched template is kept on the context so tracing can
 * name spans after the route, never after the raw path.
 *
 * A middleware calls `next()` at most once; a second call rejects with an error (as Hono's `compose`
 * does) instead of running the handler again.
 *
 * Handlers throw {@linkcode HttpError} for protocol errors; the router turns it into upstream's error
 * form (plain-text body, empty for status-only errors).
 *
 * @module
 */

import type { ResponseEnds } from "./response_ends.ts";

/** Per-request context passed to middleware and handlers. */
export interface Ctx {
  /** The incoming request. */
  readonly req: Request;
  /** Parsed request URL. */
  readonly url: URL;
  /** Percent-decoded route parameters. */
  params: Record<string, string>;
  /** The matched route template, or undefined when no route matched. */
  route: string | undefined;
  /** Remote address of the client. */
  readonly remote: Deno.NetAddr | undefined;
  /** Free-form per-request state for middleware. */
  readonly state: Record<string, unknown>;
  /**
   * Where the listener reports the end of this request's response (`http/response_ends.ts`);
   * undefined when the request is handled in-process, with nobody to report.
   */
  readonly responseEnds?: ResponseEnds;
}

/**
 * What the listener knows of a request beside the `Request` itself (`http/serve.ts` fills in all
 * of it; a request handled in-process may have none).
 */
export interface ListenerInfo {
  /** The client's address. */
  remote?: Deno.NetAddr;
  /** The request's URL, already parsed (the router parses `req.url` itself without it). */
  url?: URL;
  /** Where the listener reports the end of the response (`http/response_ends.ts`). */
  responseEnds?: ResponseEnds;
}

/** A request handler. */
export type Handler = (ctx: Ctx) => Response | Promise<Response>;

/** Middleware around the handler: call `next()` (at most once) to continue. */
export type Middleware = (ctx: Ctx, next: () => Promise<Response>) => Promise<Response>;

/** A protocol error with an HTTP status; `message` becomes the plain-text body. */
export class HttpError extends Error {
  /** HTTP status code. */
  readonly status: number;
  /** Extra response headers. */
  readonly headers: HeadersInit | undefined;

  /** Creates an error; an empty message gives an empty body (upstream's "status only" errors). */
  constructor(status: number, message = "", headers?: HeadersInit) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.headers = headers;
  }
}

interface Route {
  method: string;
  template: string;
  regex: RegExp;
  names: string[];
  handler: Handler;
}

/** Compiles a route template into a regular expression over the raw path. */
export function compileTemplate(template: string): { regex: RegExp; names: string[] } {
  const names: string[] = [];
  let source = "^";
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf("{", i);
    if (open < 0) {
      source += escapeRegex(template.slice(i));
      break;
    }
    source += escapeRegex(template.slice(i, open));
    const close = template.indexOf("}", open);
    if (close < 0) throw new Error(`route ${template}: unclosed {`);
    let name = template.slice(open + 1, close);
    if (name.endsWith("+")) {
      name = name.slice(0, -1);
      source += "(.+?)";
    } else {
      source += "([^/]+)";
    }
    names.push(name);
    i = close + 1;
  }
  return { regex: new RegExp(source + "$"), names };
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Decodes one path parameter like Go's `url.PathUnescape` (no `+` → space). */
export function decodeParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, `malformed percent-encoding in path parameter: ${raw}`);
  }
}

/** Converts a thrown value into the response upstream would send. */
export function errorResponse(error: unknown): Response {
  if (error instanceof HttpError) {
    return new Response(error.message === "" ? null : error.message, {
      status: error.status,
      headers: error.headers,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new Response(message, { status: 500 });
}

/** Routes requests to handlers through a middleware chain. */
export class Router {
  readonly #routes: Route[] = [];
  readonly #middleware: Middleware[] = [];

  /** Adds middleware; it runs for every request, matched or not, in the order added. */
  use(mw: Middleware): this {
    this.#middleware.push(mw);
    return this;
  }

  /** Adds a route for one method (or `*` for any). */
  on(method: string, template: string, handler: Handler): this {
    const { regex, names } = compileTemplate(template);
    this.#routes.push({ method: method.toUpperCase(), template, regex, names, handler });
    return this;
  }

  /** Adds a route declared as a method and template (the protocol modules' `wire/` routes). */
  route(route: { readonly method: string; readonly template: string }, handler: Handler): this {
    return this.on(route.method, route.template, handler);
  }

  /** Adds a GET route (HEAD is answered by it too, unless a HEAD route exists). */
  get(template: string, handler: Handler): this {
    return this.on("GET", template, handler);
  }

  /** Adds a HEAD route. */
  head(template: string, handler: Handler): this {
    return this.on("HEAD", template, handler);
  }

  /** Adds a POST route. */
  post(template: string, handler: Handler): this {
    return this.on("POST", template, handler);
  }

  /** Adds a PUT route. */
  put(template: string, handler: Handler): this {
    return this.on("PUT", template, handler);
  }

  /** Adds a PATCH route. */
  patch(template: string, handler: Handler): this {
    return this.on("PATCH", template, handler);
  }

  /** Adds a DELETE route. */
  delete(template: string, handler: Handler): this {
    return this.on("DELETE", template, handler);
  }

  /** Finds the route for a method and raw path. */
  match(
    method: string,
    rawPath: string,
  ): { route: Route; params: Record<string, string> } | { allowed: string[] } {
    const allowed: string[] = [];
    let headFallback: { route: Route; params: Record<string, string> } | undefined;
    for (const route of this.#routes) {
      const m = route.regex.exec(rawPath);
      if (!m) continue;
      const params: Record<string, string> = {};
      route.names.forEach((name, i) => params[name] = m[i + 1]);
      if (route.method === method || route.method === "*") return { route, params };
      if (method === "HEAD" && route.method === "GET" && !headFallback) {
        headFallback = { route, params };
      }
      allowed.push(route.method);
    }
    return headFallback ?? { allowed };
  }

  /** The `Deno.serve` handler. */
  handler(): (req: Request, info: Deno.ServeHandlerInfo) => Promise<Response> {
    return (req, info) => this.handle(req, { remote: info.remoteAddr as Deno.NetAddr });
  }

  /** Handles one request, with what its listener knows of it. */
  async handle(req: Request, info: ListenerInfo = {}): Promise<Response> {
    const url = info.url ?? new URL(req.url);
    const found = this.match(req.method, url.pathname);
    const ctx: Ctx = {
      req,
      url,
      params: {},
      route: "route" in found ? found.route.template : undefined,
      remote: info.remote,
      state: {},
      responseEnds: info.responseEnds,
    };
    const final = async (): Promise<Response> => {
      if (!("route" in found)) {
        if (found.allowed.length > 0) {
          throw new HttpError(405, "method not allowed", { allow: found.allowed.join(", ") });
        }
        throw new HttpError(404, "");
      }
      for (const [k, v] of Object.entries(found.params)) ctx.params[k] = decodeParam(v);
      return await found.route.handler(ctx);
    };
    const chain = this.#middleware;
    // Index of the last step started: a middleware calling `next()` again would run the rest of
    // the chain (and the handler) twice.
    let started = -1;
    const dispatch = async (i: number): Promise<Response> => {
      if (i <= started) throw new Error("next() called multiple times");
      started = i;
      try {
        return i < chain.length ? await chain[i](ctx, () => dispatch(i + 1)) : await final();
      } catch (error) {
        if (i < chain.length) throw error;
        // Middleware sees the response, and the error itself under `state.error`.
        ctx.state.error = error;
        return errorResponse(error);
      }
    };
    try {
      return await dispatch(0);
    } catch (error) {
      return errorResponse(error);
    }
  }
}
