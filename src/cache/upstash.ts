import { Redis } from "@upstash/redis";
import { INCREMENT_SCRIPT } from "./scripts";
import { type Cache, CacheUnavailableError } from "./types";

export interface UpstashCacheOptions {
  url: string;
  token: string;
  prefix: string;
  /** per-request timeout, so a slow REST endpoint cannot hang a request */
  timeoutMs?: number;
}

/**
 * @upstash/redis appends the whole command to its error messages (`…, command was: ["set","k","v"]`);
 * cached values may be sensitive and errors reach logs, so that part is dropped.
 */
const unavailable = (error: unknown) =>
  new CacheUnavailableError(`upstash: ${(error as Error).message.replace(/, command was: [\s\S]*$/, "")}`);

/**
 * Upstash Redis over its REST API: fetch only, so it also runs on edge platforms. Subscriptions
 * are Server-Sent Event streams (`/subscribe/<channel>`), one per channel.
 */
export function createUpstashCache(options: UpstashCacheOptions): Cache {
  const timeoutMs = options.timeoutMs ?? 2_000;
  const client = new Redis({
    url: options.url,
    token: options.token,
    automaticDeserialization: false,
    retry: { retries: 1, backoff: () => 50 },
    enableTelemetry: false,
    signal: () => AbortSignal.timeout(timeoutMs),
  });
  const k = (key: string) => options.prefix + key;
  const run = async <T>(op: () => Promise<T>): Promise<T> => {
    try {
      return await op();
    } catch (error) {
      throw unavailable(error);
    }
  };
  // Streams must outlive the per-request timeout, so subscriptions use a client without one.
  const streamingClient = new Redis({
    url: options.url,
    token: options.token,
    automaticDeserialization: false,
    retry: false,
    enableTelemetry: false,
  });

  // Each subscription holds an open stream; close() ends them so the process can exit.
  const open = new Set<ReturnType<typeof streamingClient.subscribe>>();

  return {
    kind: "upstash",
    get: (key) => run(async () => (await client.get<string>(k(key))) ?? null),
    async set(key, value, ttlMs) {
      await run(() => (ttlMs === undefined ? client.set(k(key), value) : client.set(k(key), value, { px: Math.max(1, Math.ceil(ttlMs)) })));
    },
    async setIfAbsent(key, value, ttlMs) {
      return (await run(() => client.set(k(key), value, { px: Math.max(1, Math.ceil(ttlMs)), nx: true }))) === "OK";
    },
    async delete(key) {
      await run(() => client.del(k(key)));
    },
    async increment(key, ttlMs, by = 1) {
      const [count, ttl] = await run(() =>
        client.eval<[string, string], [number, number]>(INCREMENT_SCRIPT, [k(key)], [String(Math.max(1, Math.ceil(ttlMs))), String(by)]),
      );
      return { count: Number(count), ttlMs: Number(ttl) };
    },
    async publish(channel, message) {
      await run(() => client.publish(k(channel), message));
    },
    async subscribe(channel, onMessage) {
      const subscriber = streamingClient.subscribe<string>(k(channel));
      open.add(subscriber);
      const end = async () => {
        open.delete(subscriber);
        await subscriber.unsubscribe();
      };
      // Listen before the confirmation: a message may arrive in the same chunk as it.
      subscriber.on("message", (event) => onMessage(String(event.message)));
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new CacheUnavailableError("upstash: subscribe timed out")), timeoutMs);
          subscriber.on("subscribe", () => {
            clearTimeout(timer);
            resolve();
          });
          subscriber.on("error", (error) => {
            clearTimeout(timer);
            reject(unavailable(error));
          });
        });
      } catch (error) {
        await end(); // abort the stream instead of leaving it open behind a failed subscribe
        throw error;
      }
      return end;
    },
    async ping() {
      await run(() => client.ping());
    },
    async close() {
      await Promise.all([...open].map((subscriber) => subscriber.unsubscribe()));
      open.clear();
    },
  };
}
