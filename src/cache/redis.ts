import Redis from "ioredis";
import { INCREMENT_SCRIPT } from "./scripts";
import { type Cache, CacheUnavailableError } from "./types";

export interface RedisCacheOptions {
  url: string;
  prefix: string;
  /** how long a command may wait for a connection before failing */
  connectTimeoutMs?: number;
}

/**
 * Redis over TCP with ioredis (it runs on Bun, Node and Deno). Commands fail fast while the server
 * is down instead of queueing, so a dead cache degrades requests rather than hanging them.
 * Subscriptions use a second connection, opened on first use, as Redis requires.
 */
export function createRedisCache(options: RedisCacheOptions): Cache {
  const common = {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 2_000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: (times: number) => Math.min(times * 200, 2_000),
  };
  const client = new Redis(options.url, { ...common, keyPrefix: options.prefix });
  client.on("error", () => {}); // surfaced through failing commands and the readiness check
  let subscriber: Redis | undefined;
  const handlers = new Map<string, Set<(message: string) => void>>();
  let connecting: Promise<void> | undefined;

  const ready = async (connection: Redis) => {
    if (connection.status === "ready") return;
    if (connection.status === "wait" || connection.status === "end") {
      connecting ??= connection.connect().finally(() => {
        connecting = undefined;
      });
      await connecting.catch((error: unknown) => {
        throw new CacheUnavailableError(`redis: ${(error as Error).message}`);
      });
    }
  };
  const run = async <T>(op: () => Promise<T>): Promise<T> => {
    await ready(client);
    try {
      return await op();
    } catch (error) {
      throw new CacheUnavailableError(`redis: ${(error as Error).message}`);
    }
  };

  const getSubscriber = async (): Promise<Redis> => {
    if (!subscriber) {
      // keyPrefix does not apply to channels; the prefix is added to channel names by hand.
      subscriber = new Redis(options.url, { ...common, enableOfflineQueue: true });
      subscriber.on("error", () => {});
      subscriber.on("message", (channel: string, message: string) => {
        for (const handler of handlers.get(channel) ?? []) handler(message);
      });
      await subscriber.connect();
    }
    return subscriber;
  };

  return {
    kind: "redis",
    get: (key) => run(() => client.get(key)),
    async set(key, value, ttlMs) {
      await run(() => (ttlMs === undefined ? client.set(key, value) : client.set(key, value, "PX", Math.max(1, Math.ceil(ttlMs)))));
    },
    async delete(key) {
      await run(() => client.del(key));
    },
    async increment(key, ttlMs) {
      const [count, ttl] = (await run(() => client.eval(INCREMENT_SCRIPT, 1, key, Math.max(1, Math.ceil(ttlMs))))) as [number, number];
      return { count: Number(count), ttlMs: Number(ttl) };
    },
    async publish(channel, message) {
      await run(() => client.publish(options.prefix + channel, message));
    },
    async subscribe(channel, onMessage) {
      const full = options.prefix + channel;
      const connection = await getSubscriber().catch((error: unknown) => {
        throw new CacheUnavailableError(`redis: ${(error as Error).message}`);
      });
      let set = handlers.get(full);
      if (!set) {
        handlers.set(full, (set = new Set()));
        await connection.subscribe(full);
      }
      const handler = (m: string) => onMessage(m);
      set.add(handler);
      return async () => {
        set.delete(handler);
        if (set.size === 0) {
          handlers.delete(full);
          await connection.unsubscribe(full).catch(() => {});
        }
      };
    },
    async ping() {
      await run(() => client.ping());
    },
    async close() {
      handlers.clear();
      client.disconnect();
      subscriber?.disconnect();
    },
  };
}
