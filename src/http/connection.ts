import type { Context } from "hono";

/**
 * Requests that hold their connection on purpose — long-polls and event streams — against the
 * listener's idle timeout (HTTP_IDLE_TIMEOUT_S). Only Bun cuts a request in progress at its idle
 * timeout, and only Bun's server (the app's env there) has `timeout(request, seconds)`, which sets
 * the bound for the rest of the connection; on Node and Deno these do nothing, as nothing is needed.
 */
type PerRequestTimeout = { timeout?: (request: Request, seconds: number) => void } | undefined;

/** The idle bound a long-poll gets: it outlasts the longest wait (55 s). */
export const LONG_POLL_IDLE_S = 60;

/** A long-poll may send nothing for its whole wait: it must outlast a shorter idle timeout. */
export function holdForLongPoll(c: Context, idleTimeoutSeconds: number): void {
  if (idleTimeoutSeconds >= LONG_POLL_IDLE_S) return;
  (c.env as PerRequestTimeout)?.timeout?.(c.req.raw, LONG_POLL_IDLE_S);
}

/**
 * Bun's idle timer does not count a response's own writes, so it would cut an event stream at the
 * idle timeout however often it sends heartbeats (measured). The stream gets no idle bound (it ends
 * when its client goes away, noticed at the next heartbeat), and its connection closes when the
 * stream ends, so the lifted bound does not outlive the stream.
 */
export function holdForEventStream(c: Context, stream: Response): Response {
  (c.env as PerRequestTimeout)?.timeout?.(c.req.raw, 0);
  // Set on the response itself: the SSE helper sets `Connection: keep-alive` on it.
  stream.headers.set("Connection", "close");
  return stream;
}
