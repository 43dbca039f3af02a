import { afterEach, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { eq } from "drizzle-orm";
import { generateApiKey, hashApiKeySync } from "../../src/auth/api-keys";
import { bootstrapIdentity } from "../../src/auth/bootstrap";
import { loadConfig } from "../../src/config";
import type { DatabaseHandle } from "../../src/db/client";
import { apiKeys, signingKeys } from "../../src/db/schema";
import { createLogger } from "../../src/observability/logger";
import { openTestDatabase } from "../helpers/db";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let database: DatabaseHandle;
let logs: string[];
let announced: string[];
beforeEach(async () => {
  database = await openTestDatabase();
  logs = [];
  announced = [];
}, 30_000);
afterEach(() => database.close());

const run = (env: Record<string, string> = {}) =>
  bootstrapIdentity({
    db: database.db,
    config: loadConfig(env),
    logger: createLogger({ level: "debug", sink: (line) => logs.push(line) }),
    now: new Date(),
    announce: (text) => announced.push(text),
  });

describe("identity bootstrap", () => {
  test("first start of an empty database creates one admin key and announces it once, never in a log line", async () => {
    await run();
    expect(announced).toHaveLength(1);
    const key = /arb_[0-9A-Za-z]{49}/.exec(announced[0]!)?.[0];
    expect(key).toBeDefined();
    const rows = await database.db.select().from(apiKeys);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ role: "admin", keyHash: hashApiKeySync(key!), permissions: null });
    expect(logs.join("\n")).not.toContain(key!);

    await run();
    expect(announced).toHaveLength(1);
    expect(await database.db.select().from(apiKeys)).toHaveLength(1);
    // A signing key was generated and persisted, once.
    expect(await database.db.select().from(signingKeys)).toHaveLength(1);
  });

  test("configured keys are stored by hash (role:key, bare = admin); no first-start key is made", async () => {
    const [service, admin] = [generateApiKey(), generateApiKey()];
    await run({ ARBITER_API_KEYS: `service:${service},${admin}` });
    expect(announced).toHaveLength(0);
    const rows = await database.db.select().from(apiKeys);
    expect(rows.map((r) => [r.role, r.keyHash]).sort()).toEqual(
      [
        ["admin", hashApiKeySync(admin)],
        ["service", hashApiKeySync(service)],
      ].sort(),
    );
    expect(logs.join("\n")).not.toContain(service);
  });

  test("a configured key that was revoked stays revoked across restarts", async () => {
    const key = generateApiKey();
    await run({ ARBITER_API_KEYS: key });
    const revokedAt = new Date();
    await database.db
      .update(apiKeys)
      .set({ revokedAt })
      .where(eq(apiKeys.keyHash, hashApiKeySync(key)));
    await run({ ARBITER_API_KEYS: key });
    const rows = await database.db.select().from(apiKeys);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.revokedAt?.getTime()).toBe(revokedAt.getTime());
  });

  test("an unusable TOKEN_SIGNING_KEY stops start-up, naming the variable but not its value", async () => {
    const value = '{"kty":"oct","k":"c2VjcmV0LXZhbHVlLW5vdC10by1sZWFr"}';
    let error: Error | undefined;
    try {
      await run({ TOKEN_SIGNING_KEY: value });
    } catch (e) {
      error = e as Error;
    }
    expect(error?.message).toContain("TOKEN_SIGNING_KEY");
    expect(error?.message).not.toContain("c2VjcmV0");
  });
});
