import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { startTestApp, type TestApp } from "../helpers/app";
import { findPromtool, namingViolations, parseExposition, runPromtool, scrape } from "./exposition";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

const OPS = join(import.meta.dir, "../../ops");
const PROMETHEUS_DIR = join(OPS, "prometheus");
const DASHBOARDS_DIR = join(OPS, "grafana/dashboards");

interface Rule {
  alert?: string;
  expr: string;
}
const alertRules = (): Rule[] =>
  (parse(readFileSync(join(PROMETHEUS_DIR, "alerts.yml"), "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

function dashboardExpressions(): { where: string; expr: string }[] {
  const found: { where: string; expr: string }[] = [];
  const visit = (file: string, node: unknown) => {
    if (Array.isArray(node)) for (const item of node) visit(file, item);
    else if (node && typeof node === "object") {
      const record = node as Record<string, unknown>;
      if (typeof record.expr === "string") found.push({ where: file, expr: record.expr });
      for (const value of Object.values(record)) visit(file, value);
    }
  };
  for (const file of readdirSync(DASHBOARDS_DIR).filter((f) => f.endsWith(".json"))) {
    visit(file, JSON.parse(readFileSync(join(DASHBOARDS_DIR, file), "utf8")));
  }
  return found;
}

const PROMQL_KEYWORDS = new Set(["and", "or", "unless", "offset", "bool", "inf", "nan"]);

/** The metric names a PromQL expression reads (functions, label names, keywords and strings left out). */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "")
    .replace(/\$\w+/g, "");
  const names = [...stripped.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)].map((m) => m[1]!);
  return names.filter((name) => !PROMQL_KEYWORDS.has(name.toLowerCase()));
}

/**
 * Series that other scrape targets provide, not Arbiter's /metrics: `up` is written by Prometheus
 * for every target; the backup timestamp comes from node_exporter's textfile collector, written by
 * the backup job after each successful run.
 */
const EXTERNAL = new Set(["up", "arbiter_backup_last_success_timestamp_seconds"]);
const METRICS_TOKEN = "consistency-check-token-0123456789";

describe("PromQL name extraction", () => {
  test("finds metric names and nothing else", () => {
    expect(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{http_route!~".*/(wait|stream)"}[5m]))) > 1',
      ),
    ).toEqual(["http_server_request_duration_seconds_bucket"]);
    expect(metricNamesIn("sum(increase(a_total[15m])) == 0 and sum(increase(b_total[6h])) > 0")).toEqual(["a_total", "b_total"]);
    expect(metricNamesIn("time() - max(x_seconds) > 26 * 3600")).toEqual(["x_seconds"]);
  });
});

describe("naming check", () => {
  test("flags a missing unit suffix, a unit left abbreviated, a unit only the HELP names and a counter without _total", () => {
    const exposition = [
      "# HELP http_server_request_duration Duration of HTTP server requests",
      "# UNIT http_server_request_duration seconds",
      "# TYPE http_server_request_duration histogram",
      "# HELP db_client_operation_duration_seconds Duration of database statements",
      "# UNIT db_client_operation_duration_seconds s",
      "# TYPE db_client_operation_duration_seconds histogram",
      "# HELP process_uptime Seconds since the process started",
      "# TYPE process_uptime gauge",
      "# HELP jobs Jobs done",
      "# TYPE jobs counter",
      "# HELP process_memory_usage_bytes Process memory in bytes",
      "# UNIT process_memory_usage_bytes bytes",
      "# TYPE process_memory_usage_bytes gauge",
      "# HELP busy_seconds_total Time spent busy, in seconds",
      "# UNIT busy_seconds_total seconds",
      "# TYPE busy_seconds_total counter",
    ].join("\n");
    expect(namingViolations(exposition)).toEqual([
      "http_server_request_duration: unit seconds missing from the name",
      "db_client_operation_duration_seconds: unit s is not a base unit",
      "process_uptime: HELP speaks of seconds, the name does not",
      "jobs: counter without _total",
    ]);
  });
});

describe("promtool: config, rules and rule unit tests", () => {
  const promtool = findPromtool();
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "arbiter-prometheus-"));
    cpSync(PROMETHEUS_DIR, dir, { recursive: true });
    // prometheus.yml reads the scrape token from secrets/ beside it; promtool checks the file exists.
    mkdirSync(join(dir, "secrets"), { recursive: true });
    writeFileSync(join(dir, "secrets/arbiter-metrics-token"), "scrape-token-for-config-check\n", { mode: 0o600 });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test.skipIf(!promtool).each([
    ["check config", ["check", "config", "prometheus.yml"]],
    ["check rules", ["check", "rules", "alerts.yml"]],
    ["test rules", ["test", "rules", "alerts.test.yml"]],
  ])("promtool %s", (_, args) => {
    const result = runPromtool(promtool!, [...args.slice(0, -1), join(dir, args.at(-1)!)]);
    expect(result.output).toContain("SUCCESS");
    expect(result.status).toBe(0);
  });

  test("every alert has a unit test", () => {
    const tests = parse(readFileSync(join(PROMETHEUS_DIR, "alerts.test.yml"), "utf8")) as {
      tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const firing = new Set(tests.tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
    const quiet = new Set(tests.tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length === 0).map((a) => a.alertname)));
    for (const rule of alertRules()) {
      expect({ alert: rule.alert, fires: firing.has(rule.alert!) }).toEqual({ alert: rule.alert, fires: true });
      expect({ alert: rule.alert, staysQuiet: quiet.has(rule.alert!) }).toEqual({ alert: rule.alert, staysQuiet: true });
    }
  });
});

describe("dashboards and alerts use only metrics /metrics exposes", () => {
  let t: TestApp;
  beforeAll(async () => {
    // One anonymous request per window, so the second is rate limited.
    t = await startTestApp({ env: { RATE_LIMIT_ANONYMOUS: "1", METRICS_TOKEN } });
  }, 30_000);
  afterAll(() => t.close());

  /** Traffic through every area, so each instrument has recorded at least once. */
  async function driveTraffic() {
    const occurred_at = new Date().toISOString();
    await t.request("/v1/telemetry/events", {
      method: "POST",
      as: "service",
      json: { events: [{ type: "t", source: "s", severity: "info", occurred_at }] },
    });
    await t.request("/v1/telemetry/snapshots", { method: "POST", as: "service", json: { source: "s", metrics: { a: 1 } } });
    await t.deps.cache.delete("telemetry:snapshot:latest:s");
    await t.request("/v1/telemetry/snapshots/latest?source=s", { as: "operator" }); // miss
    await t.request("/v1/telemetry/snapshots/latest?source=s", { as: "operator" }); // hit
    await t.request("/v1/telemetry/events", { headers: { "X-API-Key": "arb_not-a-real-key" } }); // auth failure
    await t.request("/v1/telemetry/events");
    await t.request("/v1/telemetry/events"); // anonymous, over the limit
    const created = await t.request("/v1/decisions", {
      method: "POST",
      as: "service",
      json: { kind: "deploy", title: "metrics check", payload: { version: 1 } },
    });
    if (created.status === 201) {
      const { id } = (await created.json()) as { id: string };
      await t.request(`/v1/decisions/${id}/approve`, { method: "POST", as: "operator", json: { reason: "metrics check" } });
    }
  }

  test("every exposed name carries its unit and counters end in _total", async () => {
    await driveTraffic();
    const { text } = await scrape(t);
    expect(namingViolations(text)).toEqual([]);
    // The traffic reached each family that has a unit, so the check above saw them all.
    const withUnit = [...text.matchAll(/^# UNIT (\S+)/gm)].map((m) => m[1]);
    expect(withUnit).toEqual(
      expect.arrayContaining([
        "http_server_request_duration_seconds",
        "db_client_operation_duration_seconds",
        "arbiter_decision_duration_seconds",
        "arbiter_decisions_pending_oldest_age_seconds",
        "process_uptime_seconds",
        "process_memory_usage_bytes",
      ]),
    );
  });

  test("every name is exposed", async () => {
    await driveTraffic();
    const exposed = new Set((await scrape(t)).samples.map((s) => s.name));
    // A real 5xx: with the database gone, readiness answers 503. The scraper's token needs no database.
    await t.deps.database.close();
    expect((await t.request("/health/ready")).status).toBe(503);
    const scraped = await fetch(`${t.url}/metrics`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(scraped.status).toBe(200);
    for (const sample of parseExposition(await scraped.text())) exposed.add(sample.name);
    const used = new Map<string, string>();
    for (const { where, expr } of dashboardExpressions()) for (const name of metricNamesIn(expr)) used.set(name, `dashboard ${where}`);
    for (const rule of alertRules()) for (const name of metricNamesIn(rule.expr)) used.set(name, `alert ${rule.alert}`);
    expect(used.size).toBeGreaterThan(15);
    const missing = [...used].filter(([name]) => !EXTERNAL.has(name) && !exposed.has(name)).map(([name, where]) => `${name} (${where})`);
    expect(missing).toEqual([]);
  });
});
