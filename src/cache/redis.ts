import Redis from "ioredis";
import { INCREMENT_SCRIPT } from "./scripts";
import { type Cache, CacheUnavailableError } from "./types";

export interface RedisCacheOptions {
  url: string;
  prefix: string;
  /** how long a command may wait for a connection (TCP and Redis's ready check) before failing */
  connectTimeoutMs?: number;
  /** how long a sent command may wait for its reply before failing */
  commandTimeoutMs?: number;
}

/**
 * Redis over TCP with ioredis (it runs on Bun, Node and Deno). Commands fail fast while the server
 * is down instead of queueing, so a dead cache degrades requests rather than hanging them.
 * Subscriptions use a second connection, opened on first use, as Redis requires.
 */
export function createRedisCache(options: RedisCacheOptions): Cache {
  const connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
  const common = {
    lazyConnect: true,
    connectTimeout: connectTimeoutMs,
    // A server that accepts connections but stops answering must fail commands, not hang them.
    commandTimeout: options.commandTimeoutMs ?? 2_000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: (times: number) => Math.min(times * 200, 2_000),
  };
  const client = new Redis(options.url, { ...common, keyPrefix: options.prefix });
  client.on("error", () => {}); // surfaced through failing commands and the readiness check
  let subscriber: Promise<Redis> | undefined;
  // One Redis SUBSCRIBE per channel, shared by its local handlers; `active` settles when Redis confirmed it.
  const channels = new Map<string, { handlers: Set<(message: string) => void>; active: Promise<void> }>();
  let connecting: Promise<void> | undefined;

  // ioredis's connectTimeout covers the TCP handshake only; a server that accepts and never answers
  // would leave connect() pending forever, so the whole connect is bounded here.
  const connectWithin = async (connection: Redis) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${connectTimeoutMs} ms`)), connectTimeoutMs);
    });
    try {
      await Promise.race([connection.connect(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
  const ready = async (connection: Redis) => {
    if (connection.status === "ready") return;
    if (!connecting && (connection.status === "wait" || connection.status === "end")) {
      connecting = connectWithin(connection).finally(() => {
        connecting = undefined;
      });
    }
    // Every command issued while the first connect is under way waits for it (its status is then
    // "connecting", and without the wait it would fail at once on the offline queue being off).
    await connecting?.catch((error: unknown) => {
      throw new CacheUnavailableError(`redis: ${(error as Error).message}`);
    });
  };
  const run = async <T>(op: () => Promise<T>): Promise<T> => {
    await ready(client);
    try {
      return await op();
    } catch (error) {
      throw new CacheUnavailableError(`redis: ${(error as Error).message}`);
    }
  };

  const getSubscriber = (): Promise<Redis> => {
    subscriber ??= (async () => {
      // keyPrefix does not apply to channels; the prefix is added to channel names by hand.
      const connection = new Redis(options.url, { ...common, enableOfflineQueue: true });
      connection.on("error", () => {});
      connection.on("message", (channel: string, message: string) => {
        for (const handler of channels.get(channel)?.handlers ?? []) handler(message);
      });
      try {
        await connectWithin(connection);
        return connection;
      } catch (error) {
        // Forget the failed connection so the next subscribe tries afresh instead of queueing behind it.
        connection.disconnect();
        subscriber = undefined;
        throw error;
      }
    })();
    return subscriber;
  };

  return {
    kind: "redis",
    get: (key) => run(() => client.get(key)),
    async set(key, value, ttlMs) {
      await run(() => (ttlMs === undefined ? client.set(key, value) : client.set(key, value, "PX", Math.max(1, Math.ceil(ttlMs)))));
    },
    async setIfAbsent(key, value, ttlMs) {
      return (await run(() => client.set(key, value, "PX", Math.max(1, Math.ceil(ttlMs)), "NX"))) === "OK";
    },
    async delete(key) {
      await run(() => client.del(key));
    },
    async increment(key, ttlMs, by = 1) {
      const [count, ttl] = (await run(() => client.eval(INCREMENT_SCRIPT, 1, key, Math.max(1, Math.ceil(ttlMs)), by))) as [number, number];
      return { count: Number(count), ttlMs: Number(ttl) };
    },
    async publish(channel, message) {
      await run(() => client.publish(options.prefix + channel, message));
    },
    async subscribe(channel, onMessage) {
      const full = options.prefix + channel;
      let entry = channels.get(full);
      if (!entry) {
        const created = {
          handlers: new Set<(message: string) => void>(),
          active: getSubscriber().then(async (connection) => {
            await connection.subscribe(full);
          }),
        };
        // A failed SUBSCRIBE must not leave an entry that makes later subscribers skip it.
        created.active.catch(() => {
          if (channels.get(full) === created) channels.delete(full);
        });
        channels.set(full, created);
        entry = created;
      }
      const current = entry;
      try {
        await current.active;
      } catch (error) {
        throw new CacheUnavailableError(`redis: ${(error as Error).message}`);
      }
      const handler = (m: string) => onMessage(m);
      current.handlers.add(handler);
      return async () => {
        current.handlers.delete(handler);
        // Only this round's entry: a stale second call must not end a newer subscription.
        if (current.handlers.size === 0 && channels.get(full) === current) {
          channels.delete(full);
          const connection = await subscriber?.catch(() => undefined);
          await connection?.unsubscribe(full).catch(() => {});
        }
      };
    },
    async ping() {
      await run(() => client.ping());
    },
    async close() {
      channels.clear();
      client.disconnect();
      (await subscriber?.catch(() => undefined))?.disconnect();
    },
  };
}
