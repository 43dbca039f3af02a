import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { displayPrefixOf, generateApiKey, hashApiKeySync, isWellFormedApiKey } from "../../src/auth/api-keys";
import { ConfigError, loadConfig } from "../../src/config";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

describe("key format", () => {
  test("keys carry the arb_ prefix, 256 bits of base62 and a checksum; every one is different", () => {
    const keys = new Set(Array.from({ length: 200 }, generateApiKey));
    expect(keys.size).toBe(200);
    for (const key of keys) {
      expect(key).toMatch(/^arb_[0-9A-Za-z]{49}$/);
      expect(isWellFormedApiKey(key)).toBe(true);
    }
  });

  test("any single changed character fails the checksum", () => {
    const key = generateApiKey();
    for (let i = 4; i < key.length; i++) {
      const replacement = key[i] === "A" ? "B" : "A";
      expect(isWellFormedApiKey(key.slice(0, i) + replacement + key.slice(i + 1))).toBe(false);
    }
  });

  test("truncated, extended, re-prefixed and non-base62 keys are malformed", () => {
    const key = generateApiKey();
    expect(isWellFormedApiKey(key.slice(0, -1))).toBe(false);
    expect(isWellFormedApiKey(`${key}0`)).toBe(false);
    expect(isWellFormedApiKey(`arc_${key.slice(4)}`)).toBe(false);
    expect(isWellFormedApiKey(`${key.slice(0, 10)}-${key.slice(11)}`)).toBe(false);
    expect(isWellFormedApiKey("")).toBe(false);
  });

  test("the stored hash is the hex SHA-256 of the whole key; the display prefix is 12 characters", async () => {
    const key = generateApiKey();
    expect(hashApiKeySync(key)).toBe(createHash("sha256").update(key).digest("hex"));
    expect(displayPrefixOf(key)).toBe(key.slice(0, 12));
  });
});

describe("ARBITER_API_KEYS", () => {
  test("role:key entries and bare keys (admin) are hashed at parse time; no raw key stays in the config", async () => {
    const [a, b] = [generateApiKey(), generateApiKey()];
    const config = loadConfig({ ARBITER_API_KEYS: ` service:${a} , ${b},` });
    expect(config.ARBITER_API_KEYS).toEqual([
      { role: "service", keyHash: hashApiKeySync(a), displayPrefix: displayPrefixOf(a) },
      { role: "admin", keyHash: hashApiKeySync(b), displayPrefix: displayPrefixOf(b) },
    ]);
    const serialised = JSON.stringify(config);
    expect(serialised).not.toContain(a);
    expect(serialised).not.toContain(b);
  });

  test("an unknown role or a malformed key stops start-up with a message that does not echo the value", () => {
    const key = generateApiKey();
    const secretish = "arb_notarealkeybutstillsecret";
    for (const value of [`root:${key}`, secretish, `service:${key.slice(0, -2)}`]) {
      let error: unknown;
      try {
        loadConfig({ ARBITER_API_KEYS: value });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const message = (error as Error).message;
      expect(message).toContain("ARBITER_API_KEYS");
      expect(message).not.toContain(key.slice(4, 20));
      expect(message).not.toContain("notarealkey");
    }
  });
});
