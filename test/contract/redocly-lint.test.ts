import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestApp, type TestApp } from "../helpers/app";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * Redocly's recommended rules hold on the live document with no error and no warning: every
 * operation has an operationId and a 4xx response, the document names its servers and license.
 */
let t: TestApp;
let dir: string;
beforeAll(async () => {
  t = await startTestApp();
  dir = await mkdtemp(join(tmpdir(), "arbiter-redocly-"));
}, 60_000);
afterAll(async () => {
  await t.close();
  await rm(dir, { recursive: true, force: true });
});

test("redocly lint reports no problem", async () => {
  const document = join(dir, "openapi.json");
  await Bun.write(document, await (await t.request("/openapi.json")).text());
  const cli = Bun.resolveSync("@redocly/cli/bin/cli.js", import.meta.dir);
  const child = Bun.spawn([process.execPath, "--bun", cli, "lint", "--extends=recommended", "--format=json", document], {
    // Offline and quiet: no usage telemetry, no update check.
    env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true", REDOCLY_SUPPRESS_NOTIFICATIONS: "true" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  const report = JSON.parse(out) as { totals: { errors: number; warnings: number }; problems: { ruleId: string; message: string }[] };
  if (report.problems.length > 0) console.error(err, report.problems.map((p) => `${p.ruleId}: ${p.message}`).join("\n"));
  expect(report.problems.map((p) => p.ruleId)).toEqual([]);
  expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  expect(code).toBe(0);
});
