/**
 * A small in-process cache with a fixed time to live, measured on an injected clock (for credentials,
 * the TTL bounds how long another replica may keep accepting a key revoked elsewhere; for decisions,
 * how long a copy may outlive a lost change notification). Bounded: past `maxEntries` the oldest
 * insertion is evicted.
 */
export interface TtlCache<V> {
  get(key: string): V | undefined;
  set(key: string, value: V): void;
  delete(key: string): void;
  /** drops every entry whose value matches: for lookups by something other than the key */
  deleteWhere(matches: (value: V) => boolean): void;
}

export function createTtlCache<V>(options: { ttlMs: number; now: () => number; maxEntries?: number }): TtlCache<V> {
  const maxEntries = options.maxEntries ?? 10_000;
  const entries = new Map<string, { value: V; expiresAt: number }>();
  return {
    get(key) {
      const entry = entries.get(key);
      if (!entry) return undefined;
      if (entry.expiresAt <= options.now()) {
        entries.delete(key);
        return undefined;
      }
      return entry.value;
    },
    set(key, value) {
      if (options.ttlMs <= 0) return;
      entries.delete(key);
      entries.set(key, { value, expiresAt: options.now() + options.ttlMs });
      if (entries.size > maxEntries) {
        const oldest = entries.keys().next().value;
        if (oldest !== undefined) entries.delete(oldest);
      }
    },
    delete(key) {
      entries.delete(key);
    },
    deleteWhere(matches) {
      for (const [key, entry] of entries) if (matches(entry.value)) entries.delete(key);
    },
  };
}
