import type { Context } from "hono";
import type { Cache } from "../cache";

/**
 * Fixed-window counters in the shared cache, so a limit holds across replicas when the cache is
 * Redis/Upstash. The window index comes from the injected clock (tests advance it instead of
 * sleeping); the counter key carries the index, so a new window starts from zero.
 */
export interface WindowState {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** milliseconds until the window resets */
  resetMs: number;
}

/** The counter of the window `nowMs` falls in, and the time left until the next one starts. */
function currentWindow(key: string, windowMs: number, nowMs: number) {
  const window = Math.floor(nowMs / windowMs);
  return { counter: `rl:${key}:${window}`, resetMs: (window + 1) * windowMs - nowMs };
}

export async function hitWindow(cache: Cache, key: string, limit: number, windowMs: number, nowMs: number): Promise<WindowState> {
  const { counter, resetMs } = currentWindow(key, windowMs, nowMs);
  const { count } = await cache.increment(counter, resetMs + 1_000);
  return { allowed: count <= limit, limit, remaining: Math.max(0, limit - count), resetMs };
}

/** The current count of a window without adding to it. */
export async function peekWindow(cache: Cache, key: string, limit: number, windowMs: number, nowMs: number): Promise<WindowState> {
  const { counter, resetMs } = currentWindow(key, windowMs, nowMs);
  const count = Number((await cache.get(counter)) ?? 0);
  return { allowed: count < limit, limit, remaining: Math.max(0, limit - count), resetMs };
}

/** `RateLimit-*` (IETF draft) and, when refused, `Retry-After` headers for a window state. */
export function rateLimitHeaders(state: WindowState): Record<string, string> {
  const resetSeconds = String(Math.max(1, Math.ceil(state.resetMs / 1000)));
  const headers: Record<string, string> = {
    "RateLimit-Limit": String(state.limit),
    "RateLimit-Remaining": String(state.remaining),
    "RateLimit-Reset": resetSeconds,
  };
  if (!state.allowed) headers["Retry-After"] = resetSeconds;
  return headers;
}

/**
 * The caller's address: from `X-Forwarded-For` when the server sits behind `trustedHops` proxies
 * (the entry the nearest trusted proxy saw), otherwise the socket peer when the runtime exposes it
 * (Bun passes its server as the Hono env), otherwise "unknown".
 */
export function clientAddress(c: Context, trustedHops: number): string {
  if (trustedHops > 0) {
    const forwarded = c.req.header("x-forwarded-for");
    if (forwarded) {
      const hops = forwarded.split(",").map((part) => part.trim());
      const candidate = hops[Math.max(0, hops.length - trustedHops)];
      if (candidate) return candidate.slice(0, 64);
    }
  }
  const server = c.env as { requestIP?: (request: Request) => { address: string } | null } | undefined;
  try {
    return server?.requestIP?.(c.req.raw)?.address ?? "unknown";
  } catch {
    return "unknown";
  }
}
