import type { Context } from "hono";

/** The idle bound a held connection gets: it outlasts the longest long-poll wait (55 s). */
export const HELD_CONNECTION_IDLE_S = 60;

/**
 * Lets a long-poll or event stream, which may rightly send nothing for a while, outlast an
 * HTTP_IDLE_TIMEOUT_S shorter than its wait. Only Bun cuts a request in progress at the idle
 * timeout, and only Bun's server (the app's env there) has `timeout(request, seconds)`; on Node
 * and Deno this does nothing, as nothing is needed. On Bun the longer bound stays with the
 * connection after the request.
 */
export function holdConnectionOpen(c: Context, idleTimeoutSeconds: number): void {
  if (idleTimeoutSeconds >= HELD_CONNECTION_IDLE_S) return;
  const server = c.env as { timeout?: (request: Request, seconds: number) => void } | undefined;
  server?.timeout?.(c.req.raw, HELD_CONNECTION_IDLE_S);
}
