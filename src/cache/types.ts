/**
 * The one cache interface every backend implements (in-memory, Redis over TCP, Upstash REST).
 * Values are strings: callers own their encoding. Keys are namespaced by the backend with the
 * configured prefix, so several deployments (or test runs) can share one Redis.
 */
export interface Cache {
  readonly kind: "memory" | "redis" | "upstash";
  get(key: string): Promise<string | null>;
  /** ttlMs omitted → no expiry */
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  /** Stores the value only when the key holds nothing (Redis `SET … NX`); resolves whether it stored it. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  delete(key: string): Promise<void>;
  /**
   * Atomically adds `by` (default 1; 0 reads the count) and, when the key is new, sets its expiry.
   * Returns the new count and the time left before the window resets: the primitive behind
   * fixed-window rate limits.
   */
  increment(key: string, ttlMs: number, by?: number): Promise<{ count: number; ttlMs: number }>;
  publish(channel: string, message: string): Promise<void>;
  /** resolves once the subscription is active; the returned function ends it */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class CacheUnavailableError extends Error {
  override name = "CacheUnavailableError";
}
