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

/** Hits a replica may count without telling the shared cache: 1% of the limit, at least 1. */
export const localAllowance = (limit: number) => Math.max(1, Math.floor(limit / 100));
/** Unpushed hits older than this are pushed with the next request, even below the allowance. */
export const SYNC_INTERVAL_MS = 250;

export interface RateLimiter {
  /** Counts one request against `key`'s current window; `allowed` says whether it is within `limit`. */
  hit(key: string, limit: number, windowMs: number): Promise<WindowState>;
}

interface LocalWindow {
  /** when this window ends: it also tells the window apart from the next one */
  endsAt: number;
  /** hits counted by this replica in this window */
  local: number;
  /** how many of them the shared counter has */
  pushed: number;
  /** hits of other replicas, as of the last push */
  others: number;
  lastPush: number;
  pushing: Promise<void> | undefined;
  /** false until the shared counter has answered once in this window */
  known: boolean;
}

/**
 * Fixed windows counted in this process and added to the shared counter (`hitWindow`'s key) in
 * batches, so a request costs a map update instead of a cache round trip, and the limit still holds
 * across replicas. A replica pushes its count when it first sees a window, whenever its unpushed
 * hits reach the local allowance (1% of the limit), within SYNC_INTERVAL_MS otherwise, and before
 * every answer once the window is within one allowance of the limit. Each hit is judged by its own
 * place in the window (its local ordinal plus the other replicas' hits last seen). The bound: with
 * R replicas, a window admits at most limit + (R − 1) × allowance requests; a single replica is
 * exact. Limits under 100 have an allowance of 1: every hit is pushed before it is answered.
 * When the cache fails, `onError` is told and the replica keeps limiting on its own counts.
 */
export function createRateLimiter(deps: { cache: Cache; now: () => number; onError: (error: unknown) => void }): RateLimiter {
  const windows = new Map<string, LocalWindow>();
  let lastPrune = 0;

  const push = (key: string, state: LocalWindow, windowMs: number, nowMs: number): Promise<void> => {
    if (state.pushing) return state.pushing;
    const amount = state.local - state.pushed;
    const { counter, resetMs } = currentWindow(key, windowMs, nowMs);
    const settle = () => {
      state.known = true;
      state.lastPush = deps.now();
      state.pushing = undefined;
    };
    state.pushing = deps.cache.increment(counter, resetMs + 1_000, amount).then(
      ({ count }) => {
        state.pushed += amount;
        state.others = Math.max(state.others, count - state.pushed);
        settle();
      },
      (error: unknown) => {
        settle();
        deps.onError(error);
      },
    );
    return state.pushing;
  };

  /** Drops windows that have ended, at most once a second. */
  const prune = (nowMs: number) => {
    if (nowMs - lastPrune < 1_000) return;
    lastPrune = nowMs;
    for (const [key, state] of windows) if (state.endsAt <= nowMs) windows.delete(key);
  };

  return {
    async hit(key, limit, windowMs) {
      const nowMs = deps.now();
      const endsAt = (Math.floor(nowMs / windowMs) + 1) * windowMs;
      prune(nowMs);
      const id = `${windowMs}:${key}`;
      let state = windows.get(id);
      if (!state || state.endsAt !== endsAt) {
        state = {
          endsAt,
          local: 0,
          pushed: 0,
          others: 0,
          lastPush: nowMs,
          pushing: undefined,
          known: false,
        };
        windows.set(id, state);
      }
      const ordinal = ++state.local;
      const allowance = localAllowance(limit);
      const mustPush = () => !state.known || state.local - state.pushed >= allowance || limit - (state.local + state.others) < allowance;
      if (mustPush()) {
        await push(key, state, windowMs, nowMs);
        // A push already in flight did not carry this hit: send it too when it still must go.
        if (state.pushed < ordinal && mustPush()) await push(key, state, windowMs, nowMs);
      } else if (nowMs - state.lastPush >= SYNC_INTERVAL_MS) void push(key, state, windowMs, nowMs);
      const count = ordinal + state.others;
      return { allowed: count <= limit, limit, remaining: Math.max(0, limit - count), resetMs: state.endsAt - nowMs };
    },
  };
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
