import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "./env";

/**
 * Work every request gets on its way in and once its answer is final, without a middleware of its
 * own: `before` returns what `after` needs. Each async middleware costs a closure for `next`, an
 * async frame and a promise per request, and Hono resumes both its dispatch and the middleware on
 * the way out; on a cached read that was a tenth of the server's time, so the request id, trace
 * context, log line, metrics and security headers are hooks run by one middleware (aroundRequest).
 */
export interface RequestHook<S> {
  before(c: Context<AppEnv>): S;
  /**
   * Runs in reverse order of `before`, also when the request failed past every error handler:
   * `c.finalized` is then false and `c.res` is not the answer (the server answers 500).
   */
  after(c: Context<AppEnv>, state: S): void;
}

// biome-ignore lint/suspicious/noExplicitAny: each hook's state type is its own; the driver only hands it back.
type AnyHook = RequestHook<any>;

/** One middleware running `hooks`: every `before` in order, the rest of the chain, every `after` in reverse. */
export function aroundRequest(...hooks: AnyHook[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const states: unknown[] = new Array(hooks.length);
    for (let i = 0; i < hooks.length; i++) states[i] = hooks[i]!.before(c);
    try {
      await next();
    } finally {
      for (let i = hooks.length - 1; i >= 0; i--) hooks[i]!.after(c, states[i]);
    }
  };
}
