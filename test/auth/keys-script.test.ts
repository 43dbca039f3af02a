import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REVOCATION_CHANNEL } from "../../src/auth/revocations";
import { createRedisCache } from "../../src/cache/redis";
import { waitFor } from "../foundation/support";
import { uniquePrefix } from "../helpers/cache";
import { createScratchDatabase } from "../helpers/db";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/** `bun run keys …` against its own database: embedded (a temporary DATA_DIR) or a scratch PostgreSQL database. */
let env: Record<string, string>;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  if (process.env.DATABASE_URL) {
    const scratch = await createScratchDatabase(process.env.DATABASE_URL);
    env = { DATABASE_URL: scratch.url };
    cleanup = scratch.drop;
  } else {
    const dir = mkdtempSync(join(tmpdir(), "arbiter-keys-"));
    env = { DATA_DIR: dir };
    cleanup = async () => rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);
afterAll(() => cleanup());

function keys(...args: [...string[], Record<string, string>] | string[]) {
  const extra = typeof args.at(-1) === "object" ? (args.pop() as Record<string, string>) : {};
  const { PATH, HOME } = process.env;
  const result = Bun.spawnSync(["bun", "run", "scripts/keys.ts", ...(args as string[])], {
    env: { PATH, HOME, LOG_LEVEL: "silent", ...env, ...extra },
  });
  return { code: result.exitCode, out: result.stdout.toString(), err: result.stderr.toString() };
}

describe("bun run keys", () => {
  test("generate prints a well-formed key without storing it", () => {
    const { code, out } = keys("generate");
    expect(code).toBe(0);
    expect(out.trim()).toMatch(/^arb_[0-9A-Za-z]{49}$/);
  });

  test("create, list, rotate and revoke against the configured database", () => {
    const created = keys("create", "--name", "ci", "--role", "service", "--permissions", "decisions:create,decisions:read");
    expect(created.code).toBe(0);
    const key = JSON.parse(created.out) as { id: string; key: string; permissions: string[] };
    expect(key.key).toMatch(/^arb_/);
    expect(key.permissions).toEqual(["decisions:create", "decisions:read"]);

    const listed = JSON.parse(keys("list", "--role", "service").out) as { id: string; key?: string }[];
    expect(listed.map((k) => k.id)).toContain(key.id);
    expect(listed.every((k) => k.key === undefined)).toBe(true);

    const rotated = JSON.parse(keys("rotate", key.id, "--grace-seconds", "60").out) as { id: string; previous: { status: string } };
    expect(rotated.previous.status).toBe("rotating");
    expect(keys("revoke", rotated.id).code).toBe(0);
    const again = keys("revoke", rotated.id);
    expect(again.code).toBe(1);
    expect(again.err).toContain("key_revoked");
  }, 60_000);

  test.skipIf(!process.env.REDIS_URL)(
    "revoke broadcasts the key id to the replicas sharing the Redis",
    async () => {
      const prefix = uniquePrefix();
      const listener = createRedisCache({ url: process.env.REDIS_URL!, prefix });
      const messages: string[] = [];
      await listener.subscribe(REVOCATION_CHANNEL, (message) => messages.push(message));
      try {
        const key = JSON.parse(keys("create", "--name", "broadcast", "--role", "readonly").out) as { id: string };
        const revoked = keys("revoke", key.id, { REDIS_URL: process.env.REDIS_URL!, CACHE_PREFIX: prefix });
        expect(revoked.code).toBe(0);
        await waitFor(() => messages.length > 0, "the script's revocation broadcast");
        expect(messages.map((m) => JSON.parse(m))).toEqual([{ kind: "key", id: key.id }]);
      } finally {
        await listener.close();
      }
    },
    60_000,
  );

  test("bad usage exits 2 with a message", () => {
    const bad = keys("create", "--name", "x", "--role", "root");
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--role");
    expect(keys("revoke", "not-a-uuid").code).toBe(2);
    expect(keys("list", "--limit", "many").code).toBe(2);
    expect(keys("create", "--name", "x", "--role", "service", "--expires-at", "+010000-01-01T00:00:00Z").code).toBe(2);
    const escalate = keys("create", "--name", "x", "--role", "service", "--permissions", "keys:create");
    expect(escalate.code).toBe(1);
    expect(escalate.err).toContain("permissions_not_in_role");
  }, 60_000);
});
