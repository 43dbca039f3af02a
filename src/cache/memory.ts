import type { Cache } from "./types";

interface Entry {
  value: string;
  expiresAt: number; // Infinity when no TTL
}

/**
 * In-process cache: the embedded default. Expired entries are dropped on read and by a periodic
 * sweep; the entry count is bounded (oldest inserted evicted first) so it cannot grow without limit.
 */
export function createMemoryCache(options: { maxEntries?: number; now?: () => number } = {}): Cache {
  const maxEntries = options.maxEntries ?? 100_000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, Entry>();
  const channels = new Map<string, Set<(message: string) => void>>();

  const live = (key: string): Entry | undefined => {
    const entry = entries.get(key);
    if (entry && entry.expiresAt <= now()) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };
  const put = (key: string, entry: Entry) => {
    entries.delete(key); // re-insert so Map order tracks recency of writes
    entries.set(key, entry);
    if (entries.size > maxEntries) {
      const oldest = entries.keys().next().value;
      if (oldest !== undefined) entries.delete(oldest);
    }
  };
  const sweep = setInterval(() => {
    const t = now();
    for (const [key, entry] of entries) if (entry.expiresAt <= t) entries.delete(key);
  }, 30_000);
  (sweep as { unref?: () => void }).unref?.();

  return {
    kind: "memory",
    async get(key) {
      return live(key)?.value ?? null;
    },
    async set(key, value, ttlMs) {
      put(key, { value, expiresAt: ttlMs === undefined ? Number.POSITIVE_INFINITY : now() + ttlMs });
    },
    async setIfAbsent(key, value, ttlMs) {
      if (live(key)) return false;
      put(key, { value, expiresAt: now() + ttlMs });
      return true;
    },
    async delete(key) {
      entries.delete(key);
    },
    async increment(key, ttlMs, by = 1) {
      const entry = live(key);
      if (!entry) {
        put(key, { value: String(by), expiresAt: now() + ttlMs });
        return { count: by, ttlMs };
      }
      const count = Number(entry.value) + by;
      entry.value = String(count);
      // As in Redis: a counter found without an expiry gets one, so a window always ends.
      if (entry.expiresAt === Number.POSITIVE_INFINITY) entry.expiresAt = now() + ttlMs;
      return { count, ttlMs: Math.max(0, entry.expiresAt - now()) };
    },
    async publish(channel, message) {
      for (const handler of channels.get(channel) ?? []) {
        // Delivered asynchronously, as a real broker would, so publishers never run subscriber code.
        queueMicrotask(() => handler(message));
      }
    },
    async subscribe(channel, onMessage) {
      let handlers = channels.get(channel);
      if (!handlers) channels.set(channel, (handlers = new Set()));
      const handler = (m: string) => onMessage(m);
      handlers.add(handler);
      return async () => {
        handlers.delete(handler);
        // Only this round's set: a stale second call must not drop a newer round of subscribers.
        if (handlers.size === 0 && channels.get(channel) === handlers) channels.delete(channel);
      };
    },
    async ping() {},
    async close() {
      clearInterval(sweep);
      entries.clear();
      channels.clear();
    },
  };
}
