import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createMemoryCache } from "../../src/cache/memory";
import { createRedisCache } from "../../src/cache/redis";
import { type Cache, CacheUnavailableError } from "../../src/cache/types";
import { createUpstashCache } from "../../src/cache/upstash";
import { closedPort, freezableProxy, REAL_REDIS_URL, redisReachable, silentServer, waitFor, within } from "../foundation/support";
import { uniquePrefix } from "../helpers/cache";
import { startUpstashBridge, type UpstashBridge } from "../helpers/upstash-bridge";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * One contract, every backend. `open(prefix)` builds a cache namespaced by `prefix`; two caches
 * opened with different prefixes must not see each other's keys or channels.
 */
interface Backend {
  name: string;
  open(prefix: string): Cache;
  /** a cache pointed at an endpoint nothing listens on; absent for the in-process backend */
  unreachable?: () => Promise<Cache>;
  /** a cache pointed at a server that accepts connections and never answers, with a short timeout */
  silent?: (port: number) => Cache;
  setup?: () => Promise<void>;
  teardown?: () => Promise<void>;
  /** needs the real Redis, which may be absent on a bare machine (the probe says so) */
  needsRedis?: boolean;
}

const haveRedis = await redisReachable();

function cacheContract(backend: Backend) {
  describe.skipIf(Boolean(backend.needsRedis) && !haveRedis)(`cache contract: ${backend.name}`, () => {
    const opened: Cache[] = [];
    let cache: Cache;
    const open = (prefix = uniquePrefix()) => {
      const c = backend.open(prefix);
      opened.push(c);
      return c;
    };
    beforeAll(async () => {
      await backend.setup?.();
      cache = open();
    });
    afterAll(async () => {
      await Promise.all(opened.map((c) => c.close()));
      await backend.teardown?.();
    });

    test("setIfAbsent stores only into an empty key, and its value expires", async () => {
      expect(await cache.setIfAbsent("nx", "first", 60_000)).toBe(true);
      expect(await cache.setIfAbsent("nx", "second", 60_000)).toBe(false);
      expect(await cache.get("nx")).toBe("first");
      await cache.delete("nx");
      expect(await cache.setIfAbsent("nx", "third", 150)).toBe(true);
      expect(await cache.get("nx")).toBe("third");
      await waitFor(async () => (await cache.get("nx")) === null, "the setIfAbsent value to expire", 3_000);
      expect(await cache.setIfAbsent("nx", "fourth", 60_000)).toBe(true);
      expect(await cache.get("nx")).toBe("fourth");
    });

    test("get, set, overwrite, delete", async () => {
      expect(await cache.get("missing")).toBeNull();
      await cache.set("k", "one");
      expect(await cache.get("k")).toBe("one");
      await cache.set("k", "two ✓ with spaces, commas and unicode");
      expect(await cache.get("k")).toBe("two ✓ with spaces, commas and unicode");
      await cache.delete("k");
      expect(await cache.get("k")).toBeNull();
      await cache.delete("k"); // deleting what is gone is not an error
      await cache.ping();
    });

    test("values are strings, returned exactly (no JSON or number coercion)", async () => {
      for (const value of ["42", '{"a":1}', "true", "null", "", "OK"]) {
        await cache.set("raw", value);
        expect(await cache.get("raw")).toBe(value);
      }
    });

    test("a TTL expires the key; a key without TTL stays", async () => {
      // Long enough that the read below lands before expiry even over REST on a busy machine.
      await cache.set("short", "v", 500);
      await cache.set("long", "v", 60_000);
      await cache.set("forever", "v");
      expect(await cache.get("short")).toBe("v");
      await waitFor(async () => (await cache.get("short")) === null, "short-lived key to expire");
      expect(await cache.get("long")).toBe("v");
      expect(await cache.get("forever")).toBe("v");
    });

    test("increment counts from 1 and sets the window once", async () => {
      const first = await cache.increment("window", 60_000);
      expect(first.count).toBe(1);
      expect(first.ttlMs).toBeGreaterThan(0);
      expect(first.ttlMs).toBeLessThanOrEqual(60_000);
      // A later call with a different TTL does not move the window.
      const second = await cache.increment("window", 3_600_000);
      expect(second.count).toBe(2);
      expect(second.ttlMs).toBeLessThanOrEqual(60_000);
      expect(await cache.get("window")).toBe("2");
    });

    test("parallel increments: every count handed out exactly once, one window", async () => {
      const results = await Promise.all(Array.from({ length: 40 }, () => cache.increment("race", 60_000)));
      expect(results.map((r) => r.count).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      for (const r of results) expect(r.ttlMs).toBeLessThanOrEqual(60_000);
      expect(await cache.get("race")).toBe("40");
    });

    test("increment adds any amount; by 0 reads the count without changing it", async () => {
      expect((await cache.increment("batched", 60_000, 25)).count).toBe(25);
      expect((await cache.increment("batched", 60_000, 0)).count).toBe(25);
      expect((await cache.increment("batched", 60_000)).count).toBe(26);
      expect(await cache.get("batched")).toBe("26");
    });

    test("an increment window resets after it expires", async () => {
      await cache.increment("reset", 40);
      await cache.increment("reset", 40);
      await waitFor(async () => (await cache.get("reset")) === null, "counter window to expire");
      expect((await cache.increment("reset", 60_000)).count).toBe(1);
    });

    test("increment gives a TTL to a counter that had none", async () => {
      await cache.set("unbounded", "5");
      const result = await cache.increment("unbounded", 40);
      expect(result.count).toBe(6);
      expect(result.ttlMs).toBeLessThanOrEqual(40);
      await waitFor(async () => (await cache.get("unbounded")) === null, "counter given a TTL to expire");
    });

    test("publish reaches every subscriber; unsubscribing stops delivery", async () => {
      const a: string[] = [];
      const b: string[] = [];
      const stopA = await cache.subscribe("events", (m) => a.push(m));
      const stopB = await cache.subscribe("events", (m) => b.push(m));
      await cache.publish("events", "first, with a comma");
      await waitFor(() => a.length === 1 && b.length === 1, "both subscribers to receive");
      expect(a).toEqual(["first, with a comma"]);
      expect(b).toEqual(["first, with a comma"]);

      await stopA();
      await stopA(); // a second call is harmless and must not end b's subscription
      await cache.publish("events", "second");
      await waitFor(() => b.length === 2, "remaining subscriber to receive");
      expect(b[1]).toBe("second");
      await Bun.sleep(100); // room for a stray delivery to a, which must not come
      expect(a).toEqual(["first, with a comma"]);
      await stopB();
    });

    test("a channel can be subscribed again after everyone left it", async () => {
      const stop = await cache.subscribe("again", () => {});
      await stop();
      const got: string[] = [];
      const stopAgain = await cache.subscribe("again", (m) => got.push(m));
      await stop(); // a stale unsubscribe from the earlier round must not end the new subscription
      await cache.publish("again", "back");
      await waitFor(() => got.length === 1, "the new subscriber to receive");
      await stopAgain();
    });

    test("prefixes isolate keys and channels", async () => {
      const other = open();
      await cache.set("shared-name", "mine");
      await other.set("shared-name", "theirs");
      expect(await cache.get("shared-name")).toBe("mine");
      expect(await other.get("shared-name")).toBe("theirs");
      await other.delete("shared-name");
      expect(await cache.get("shared-name")).toBe("mine");
      expect((await other.increment("shared-count", 60_000)).count).toBe(1);
      expect((await cache.increment("shared-count", 60_000)).count).toBe(1);

      const mine: string[] = [];
      const theirs: string[] = [];
      const stopMine = await cache.subscribe("chan", (m) => mine.push(m));
      const stopTheirs = await other.subscribe("chan", (m) => theirs.push(m));
      await other.publish("chan", "for them");
      await waitFor(() => theirs.length === 1, "the other namespace to receive its message");
      await cache.publish("chan", "for me");
      await waitFor(() => mine.length === 1, "this namespace to receive its message");
      expect(mine).toEqual(["for me"]);
      expect(theirs).toEqual(["for them"]);
      await Promise.all([stopMine(), stopTheirs()]);
    });

    const expectUnavailable = async (dead: Cache, label: string) => {
      opened.push(dead);
      const operations: [string, () => Promise<unknown>][] = [
        ["ping", () => dead.ping()],
        ["get", () => dead.get("k")],
        ["set", () => dead.set("k", "v", 1_000)],
        ["delete", () => dead.delete("k")],
        ["increment", () => dead.increment("k", 1_000)],
        ["publish", () => dead.publish("c", "m")],
        ["subscribe", () => dead.subscribe("c", () => {})],
      ];
      for (const [name, operation] of operations) {
        const error = await within(
          operation().then(
            () => undefined,
            (e: unknown) => e,
          ),
          5_000,
          `${name} against ${label}`,
        );
        expect(error, name).toBeInstanceOf(CacheUnavailableError);
      }
    };

    const { unreachable, silent } = backend;
    if (unreachable) {
      test("an unreachable backend fails fast with CacheUnavailableError", async () => {
        await expectUnavailable(await unreachable(), `an unreachable ${backend.name}`);
      });
    }
    if (silent) {
      test("a backend that never answers fails within its timeout, never hangs", async () => {
        const server = silentServer();
        try {
          await expectUnavailable(silent(server.port), `a silent ${backend.name}`);
        } finally {
          server.stop();
        }
      }, 20_000);
    }
  });
}

cacheContract({ name: "memory", open: () => createMemoryCache() });

cacheContract({
  name: "redis (TCP)",
  needsRedis: true,
  open: (prefix) => createRedisCache({ url: REAL_REDIS_URL, prefix }),
  unreachable: async () => createRedisCache({ url: `redis://127.0.0.1:${await closedPort()}`, prefix: uniquePrefix() }),
  silent: (port) =>
    createRedisCache({ url: `redis://127.0.0.1:${port}`, prefix: uniquePrefix(), connectTimeoutMs: 300, commandTimeoutMs: 300 }),
});

let bridge: UpstashBridge;
cacheContract({
  name: "upstash (REST)",
  needsRedis: true,
  setup: async () => {
    bridge = startUpstashBridge({ redisUrl: REAL_REDIS_URL });
  },
  teardown: () => bridge.close(),
  open: (prefix) => createUpstashCache({ url: bridge.url, token: bridge.token, prefix }),
  unreachable: async () =>
    createUpstashCache({ url: `http://127.0.0.1:${await closedPort()}`, token: "unused-token", prefix: uniquePrefix(), timeoutMs: 1_000 }),
  silent: (port) => createUpstashCache({ url: `http://127.0.0.1:${port}`, token: "unused-token", prefix: uniquePrefix(), timeoutMs: 300 }),
});

describe.skipIf(!haveRedis)("redis backend", () => {
  const redisUrl = new URL(REAL_REDIS_URL);
  const redisAddress = { hostname: redisUrl.hostname, port: Number(redisUrl.port || 6379) };

  test("commands issued together on a new connection all wait for it to open", async () => {
    const cache = createRedisCache({ url: REAL_REDIS_URL, prefix: uniquePrefix() });
    try {
      const counts = await Promise.all(Array.from({ length: 5 }, () => cache.increment("first-burst", 60_000)));
      expect(counts.map((r) => r.count).sort()).toEqual([1, 2, 3, 4, 5]);
    } finally {
      await cache.close();
    }
  });

  test("down at start, then back: the cache recovers without a restart", async () => {
    const port = await closedPort();
    const cache = createRedisCache({ url: `redis://127.0.0.1:${port}`, prefix: uniquePrefix() });
    let proxy: Awaited<ReturnType<typeof freezableProxy>> | undefined;
    try {
      await expect(cache.ping()).rejects.toBeInstanceOf(CacheUnavailableError);
      proxy = await freezableProxy(redisAddress, port); // Redis "comes back" at that address
      await waitFor(
        () =>
          cache.set("back", "yes").then(
            () => true,
            () => false,
          ),
        "the cache to reconnect",
        10_000,
      );
      expect(await cache.get("back")).toBe("yes");
      const got: string[] = [];
      const stop = await cache.subscribe("after-outage", (m) => got.push(m));
      await cache.publish("after-outage", "delivered");
      await waitFor(() => got.length === 1, "a message after the outage");
      await stop();
    } finally {
      await cache.close();
      proxy?.stop();
    }
  }, 20_000);

  test("a server that stops answering mid-session: commands time out, then replies stay matched to their commands", async () => {
    const proxy = await freezableProxy(redisAddress);
    const cache = createRedisCache({ url: `redis://127.0.0.1:${proxy.port}`, prefix: uniquePrefix(), commandTimeoutMs: 300 });
    try {
      await cache.set("a", "1");
      await cache.set("b", "2");
      proxy.freeze();
      const stalled = await within(
        cache.get("a").then(
          () => undefined,
          (e: unknown) => e,
        ),
        5_000,
        "get from a frozen server",
      );
      expect(stalled).toBeInstanceOf(CacheUnavailableError);
      proxy.thaw(); // the late reply to `get a` arrives now
      expect(await cache.get("b")).toBe("2");
      expect(await cache.get("a")).toBe("1");
    } finally {
      await cache.close();
      proxy.stop();
    }
  });
});

describe.skipIf(!haveRedis)("upstash backend", () => {
  test("close() ends every subscription stream", async () => {
    const own = startUpstashBridge({ redisUrl: REAL_REDIS_URL });
    const cache = createUpstashCache({ url: own.url, token: own.token, prefix: uniquePrefix() });
    try {
      await cache.subscribe("one", () => {});
      await cache.subscribe("two", () => {});
      await waitFor(() => own.subscriptions() === 2, "both streams to open");
      await cache.close();
      await waitFor(() => own.subscriptions() === 0, "close() to end both streams");
    } finally {
      await own.close();
    }
  });

  test("a wrong token is refused, and the backend reports it as unavailable", async () => {
    const real = startUpstashBridge({ redisUrl: REAL_REDIS_URL });
    const intruder = createUpstashCache({ url: real.url, token: "not-the-token", prefix: uniquePrefix() });
    try {
      const res = await fetch(real.url, { method: "POST", body: JSON.stringify(["PING"]), headers: { Authorization: "Bearer nope" } });
      expect(res.status).toBe(401);
      await expect(intruder.ping()).rejects.toBeInstanceOf(CacheUnavailableError);
      // The client library quotes the failed command in its error; the value must not reach a log from there.
      const error = await intruder.set("session", "secret-session-value").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CacheUnavailableError);
      expect((error as Error).message).toContain("Unauthorized");
      expect((error as Error).message).not.toContain("secret-session-value");
    } finally {
      await intruder.close();
      await real.close();
    }
  });
});
