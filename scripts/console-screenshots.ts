/**
 * bun run scripts/console-screenshots.ts [--out docs/console] [--chromium /usr/bin/chromium]
 * Starts the app on an in-memory database with a few sample decisions, signs in to the operator
 * console in headless Chromium and saves the queue and a decision page at desktop (1280×800) and
 * phone (390×844) widths. Run by hand when the console's look changes; the PNGs are committed.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { createApp } from "../src/app";
import { createApiKey } from "../src/auth/api-keys";
import { createCache } from "../src/cache";
import { loadConfig } from "../src/config";
import { openPglite } from "../src/db/client";
import { type AppDeps, systemClock, VERSION } from "../src/deps";
import { createLogger } from "../src/observability/logger";
import { createMetricsRegistry } from "../src/observability/metrics";
import { parseScriptArgs } from "./lib/cli";
import { runScript } from "./lib/process";

const SAMPLES = [
  {
    kind: "deploy",
    title: "Deploy checkout 2.4.2 to production",
    priority: "high",
    payload: { service: "checkout", version: "2.4.2", region: "eu-west-1", canary: { percent: 10, minutes: 30 } },
    context: { change_ticket: "CHG-1042", diff: "https://git.example/checkout/compare/2.4.1...2.4.2", tests: "green" },
  },
  {
    kind: "db.migration",
    title: "Drop the legacy sessions table",
    priority: "critical",
    required_approvals: 2,
    payload: { database: "accounts", statement: "DROP TABLE legacy_sessions" },
    context: { rows: 1_204_311, last_read: "2026-09-30" },
  },
  {
    kind: "access.grant",
    title: "Grant read access to billing exports",
    priority: "medium",
    payload: { principal: "contractor-17", resource: "s3://billing-exports", days: 14 },
    context: { requested_by: "finance" },
  },
  {
    kind: "refund",
    title: "Refund order 88123 (EUR 1,240)",
    priority: "low",
    payload: { order: 88123, amount: 1240, currency: "EUR" },
    context: { reason: "duplicate charge" },
  },
];

const VIEWPORTS = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } } as const;

await runScript("console-screenshots", async () => {
  const { values } = parseScriptArgs({
    out: { type: "string", default: "docs/console" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  });
  const config = loadConfig({ LOG_LEVEL: "warn" });
  const database = await openPglite();
  await database.migrate();
  const cache = createCache(config);
  const metrics = createMetricsRegistry({ version: VERSION });
  const logger = createLogger({ level: "warn" });
  const deps: AppDeps = { config, database, cache, logger, clock: systemClock, meter: metrics.meter, metrics, version: VERSION };
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: createApp(deps).fetch });
  const url = server.url.toString().replace(/\/$/, "");
  const browser = await chromium.launch({
    executablePath: values.chromium,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"],
  });
  try {
    const now = new Date();
    const service = await createApiKey(database.db, { name: "deploy-bot", role: "service" }, now);
    const operator = await createApiKey(database.db, { name: "alice", role: "operator" }, now);
    const ids: string[] = [];
    for (const sample of SAMPLES) {
      const res = await fetch(`${url}/v1/decisions`, {
        method: "POST",
        headers: { "X-API-Key": service.key, "Content-Type": "application/json" },
        body: JSON.stringify({ ...sample, expires_in: 3600 }),
      });
      if (res.status !== 201) throw new Error(`creating a sample answered ${res.status}: ${await res.text()}`);
      ids.push(((await res.json()) as { id: string }).id);
    }
    mkdirSync(values.out, { recursive: true });
    for (const [name, viewport] of Object.entries(VIEWPORTS)) {
      const context = await browser.newContext({ viewport, colorScheme: "light" });
      const page = await context.newPage();
      await page.goto(`${url}/console/login`);
      await page.getByLabel("API key").fill(operator.key);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.locator("body[data-stream=open]").waitFor();
      await page.screenshot({ path: join(values.out, `queue-${name}.png`), fullPage: name === "phone" });
      await page.goto(`${url}/console/decisions/${ids[0]}`);
      await page.screenshot({ path: join(values.out, `decision-${name}.png`), fullPage: true });
      await context.close();
    }
    console.log(`console-screenshots: saved to ${values.out}`);
  } finally {
    await browser.close();
    await server.stop(true);
    await Promise.allSettled([cache.close(), database.close()]);
  }
});
