import type { Env, MiddlewareHandler } from "hono";

/**
 * Middlewares run in order as a single layer of the app's chain. Hono resumes two async frames per
 * layer on the way out of every request (its dispatch and the middleware's own); when 5,000
 * long-polls are answered at once that unwinding is the larger part of the work, so middlewares that
 * every request passes through share one. An error from further in is still answered by the layer
 * it came from, as before; one thrown by a member would skip the work after `next()` of the members
 * before it, so a member that may throw must come first or follow members with no such work.
 */
export function asOneLayer<E extends Env>(...members: MiddlewareHandler<E>[]): MiddlewareHandler<E> {
  return (c, next) => {
    const run = (i: number): Promise<unknown> => (i === members.length ? next() : members[i]!(c, () => run(i + 1) as Promise<void>));
    return run(0) as Promise<void>;
  };
}
