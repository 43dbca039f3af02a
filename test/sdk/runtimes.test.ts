import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { startTestApp, type TestApp } from "../helpers/app";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/** The SDK uses only web APIs: the same round trip runs under Node (through tsx) and Deno. */
const ROOT = join(import.meta.dir, "../..");
const SCRIPT = "test/sdk/fixtures/round-trip.ts";
const RUNTIMES = [
  { name: "node", command: ["node", "--import", "tsx", SCRIPT] },
  { name: "deno", command: ["deno", "run", "--allow-net", "--allow-env", "--allow-read", SCRIPT] },
];

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

describe("the SDK on other runtimes", () => {
  for (const runtime of RUNTIMES) {
    const missing = !Bun.which(runtime.command[0]!);
    test.skipIf(missing && process.env.CI !== "true")(`${runtime.name}: create, approve, waitFor, verifyPayload, a 404`, async () => {
      const child = Bun.spawn([...runtime.command, t.url, t.keys.service, t.keys.operator], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
      const [stdout, stderr, code] = await Promise.all([
        new Response(child.stdout).text(),
        new Response(child.stderr).text(),
        child.exited,
      ]);
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
      const result = JSON.parse(stdout);
      expect(result).toMatchObject({ status: "approved", verified: true, missing: "not_found" });
      expect((await t.request(`/v1/decisions/${result.id}`, { as: "admin" }).then((res) => res.json())).status).toBe("approved");
    });
  }
});
