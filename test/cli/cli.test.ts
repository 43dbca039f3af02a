import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Role } from "../../src/db/schema";
import { notifierOf } from "../../src/decisions/service";
import { samplePayload } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";
import { clientAs } from "../sdk/support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/** The `arbiter` CLI as a real subprocess against the real app. */
const ROOT = join(import.meta.dir, "../..");
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `bun run src/cli/main.ts …` with ARBITER_URL and the role's key in the environment (or none). */
function spawnCli(args: string[], options: { as?: Role | null; env?: Record<string, string>; stdin?: string } = {}) {
  const { ARBITER_URL: _url, ARBITER_API_KEY: _key, ...inherited } = process.env;
  const role = options.as === undefined ? "admin" : options.as;
  const env: Record<string, string | undefined> = {
    ...inherited,
    ARBITER_URL: t.url,
    ...(role ? { ARBITER_API_KEY: t.keys[role] } : {}),
    ...options.env,
  };
  const child = Bun.spawn(["bun", "run", "src/cli/main.ts", ...args], {
    cwd: ROOT,
    env,
    stdin: options.stdin === undefined ? "ignore" : new TextEncoder().encode(options.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  return {
    done: (async (): Promise<Run> => {
      const [stdout, stderr, code] = await Promise.all([
        new Response(child.stdout).text(),
        new Response(child.stderr).text(),
        child.exited,
      ]);
      return { code, stdout, stderr };
    })(),
  };
}
const cli = (args: string[], options: Parameters<typeof spawnCli>[1] = {}) => spawnCli(args, options).done;

const createDecision = (kind = "deploy", title = "Deploy checkout") =>
  clientAs(t, "service").decisions.create({ kind, title, payload: samplePayload });

describe("policies", () => {
  test("create from a file, list, update, versions, preview, replay, disable and delete", async () => {
    const dir = await import("node:fs/promises").then((fs) => fs.mkdtemp(join(import.meta.dir, ".cli-policy-")));
    const file = join(dir, "rule.cel");
    await Bun.write(file, 'decision.kind == "cli.refund" && payload.amount < 100\n');
    try {
      const created = await cli([
        "policies",
        "create",
        "--name",
        "cli rule",
        "--expression-file",
        file,
        "--outcome",
        "approve",
        "--state",
        "enforce",
        "--json",
      ]);
      expect(created.code).toBe(0);
      const rule = JSON.parse(created.stdout) as { id: string; version: number; expression: string };
      expect(rule).toMatchObject({ version: 1, expression: 'decision.kind == "cli.refund" && payload.amount < 100' });
      const decided = await clientAs(t, "service").decisions.create({ kind: "cli.refund", title: "Refund", payload: { amount: 3 } });
      expect(decided.decided_by).toBe("policy");

      const list = await cli(["policies", "list"]);
      expect(list.stdout).toContain("cli rule");
      expect(list.stdout).toMatch(/ID\s+POS\s+VERSION\s+STATE\s+OUTCOME\s+NAME/);
      const updated = await cli([
        "policies",
        "update",
        rule.id,
        "--expression",
        "payload.amount < 10",
        "--expected-version",
        "1",
        "--json",
      ]);
      expect(JSON.parse(updated.stdout).version).toBe(2);
      const versions = await cli(["policies", "versions", rule.id, "--json"]);
      expect((JSON.parse(versions.stdout) as { version: number }[]).map((v) => v.version)).toEqual([2, 1]);
      const old = await cli(["policies", "get", rule.id, "--version", "1", "--json"]);
      expect(JSON.parse(old.stdout).expression).toContain("< 100");

      const from = new Date(Date.now() - 60_000).toISOString();
      const replay = await cli(["policies", "replay", rule.id, "--from", from, "--json"]);
      expect(replay.code).toBe(0);
      expect(JSON.parse(replay.stdout).approve).toBeGreaterThanOrEqual(1);
      const preview = await cli([
        "policies",
        "preview",
        "--expression",
        "payload.amount < 100",
        "--outcome",
        "deny",
        "--reason",
        "x",
        "--from",
        from,
      ]);
      expect(preview.code).toBe(0);
      expect(preview.stdout).toMatch(/evaluated:\s+\d+/);

      const bad = await cli(["policies", "create", "--name", "bad", "--expression", "payload.amount <", "--outcome", "approve"]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain("invalid_expression");

      expect((await cli(["policies", "disable", rule.id, "--json"])).stdout).toContain('"state": "disabled"');
      expect((await cli(["policies", "delete", rule.id])).stdout).toContain(`deleted ${rule.id}`);
    } finally {
      await import("node:fs/promises").then((fs) => fs.rm(dir, { recursive: true, force: true }));
    }
  });
});

describe("decisions", () => {
  test("list prints a table by default and the page as JSON with --json", async () => {
    const kind = `cli.${crypto.randomUUID().slice(0, 8)}`;
    const first = await createDecision(kind, "First change");
    const second = await createDecision(kind, "Second change");

    const table = await cli(["decisions", "list", "--kind", kind]);
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+PRIORITY\s+KIND\s+TITLE\s+CREATED$/);
    expect(lines.slice(1).map((line) => line.split(/\s+/)[0])).toEqual([second.id, first.id]);
    expect(lines[1]).toContain("Second change");

    const json = await cli(["decisions", "list", "--kind", kind, "--json", "--limit", "1"]);
    expect(json.code).toBe(0);
    const page = JSON.parse(json.stdout);
    expect(page.data.map((d: { id: string }) => d.id)).toEqual([second.id]);
    expect(page.next_cursor).toBeString();

    const all = await cli(["decisions", "list", "--kind", kind, "--limit", "1", "--all", "--json"]);
    expect(JSON.parse(all.stdout).map((d: { id: string }) => d.id)).toEqual([second.id, first.id]);
  });

  test("approve as an operator; get shows the verdict", async () => {
    const decision = await createDecision();
    const approved = await cli(["decisions", "approve", decision.id, "--reason", "looks good"], { as: "operator" });
    expect(approved.code).toBe(0);
    expect(approved.stdout).toMatch(/^status:\s+approved$/m);
    expect((await clientAs(t, "admin").decisions.get(decision.id)).resolution_reason).toBe("looks good");

    const shown = JSON.parse((await cli(["decisions", "get", decision.id, "--json"])).stdout);
    expect(shown).toMatchObject({ id: decision.id, status: "approved" });
  });

  test("wait blocks until another client decides, then prints the decision", async () => {
    const decision = await createDecision();
    const notifier = notifierOf(t.deps);
    const parkedBefore = notifier.waiting;
    const waiting = spawnCli(["decisions", "wait", decision.id, "--timeout", "30", "--json"], { as: "service" });
    while (notifier.waiting === parkedBefore) await Bun.sleep(10);
    await clientAs(t, "operator").decisions.reject(decision.id, "too risky");
    const run = await waiting.done;
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ id: decision.id, status: "rejected", resolution_reason: "too risky" });
  });

  test("create with an idempotency key answers the same decision twice; pending lists it", async () => {
    const args = ["decisions", "create", "--kind", "cli.create", "--title", "From the CLI", "--payload", '{"b":2,"a":1}'];
    const key = ["--idempotency-key", crypto.randomUUID(), "--json"];
    const first = await cli([...args, ...key], { as: "service" });
    expect(first.code).toBe(0);
    const created = JSON.parse(first.stdout);
    expect(created).toMatchObject({ kind: "cli.create", payload: { a: 1, b: 2 }, status: "pending" });
    const again = JSON.parse((await cli([...args, ...key], { as: "service" })).stdout);
    expect(again.id).toBe(created.id);

    const pending = await cli(["decisions", "pending", "--all"], { as: "operator" });
    expect(pending.code).toBe(0);
    expect(pending.stdout).toContain(created.id);
  });
});

describe("receipts", () => {
  test("get pipes into verify; verify works offline with --jwks and refuses another payload or decision", async () => {
    const decision = await createDecision();
    await clientAs(t, "operator").decisions.approve(decision.id);
    const got = await cli(["receipts", "get", decision.id], { as: "service" });
    expect(got.code).toBe(0);
    const receipt = got.stdout.trim();

    const online = await cli(["receipts", "verify", "-", "--payload", JSON.stringify(samplePayload), "--decision", decision.id], {
      as: null,
      stdin: got.stdout,
    });
    expect(online.code).toBe(0);
    expect(online.stdout).toMatch(/^approved:\s+true$/m);
    expect(online.stdout).toMatch(/^outcome:\s+approved$/m);

    // Offline: no address and no key, only the saved key set and payload.
    const dir = mkdtempSync(join(tmpdir(), "arbiter-receipt-"));
    try {
      writeFileSync(join(dir, "jwks.json"), JSON.stringify(await (await fetch(`${t.url}/.well-known/jwks.json`)).json()));
      writeFileSync(join(dir, "payload.json"), JSON.stringify(samplePayload));
      const offline = (args: string[]) =>
        cli(["receipts", "verify", receipt, "--jwks", join(dir, "jwks.json"), ...args, "--json"], { as: null, env: { ARBITER_URL: "" } });
      const verified = await offline(["--payload-file", join(dir, "payload.json")]);
      expect(verified.code).toBe(0);
      expect(JSON.parse(verified.stdout)).toMatchObject({ approved: true, claims: { sub: decision.id, outcome: "approved" } });

      const tampered = await offline(["--payload", JSON.stringify({ ...samplePayload, version: "9.9.9" })]);
      expect(tampered.code).toBe(1);
      expect(tampered.stderr).toContain("payload_mismatch");
      const otherDecision = await offline(["--payload-file", join(dir, "payload.json"), "--decision", crypto.randomUUID()]);
      expect(otherDecision.code).toBe(1);
      expect(otherDecision.stderr).toContain("wrong_decision");
      const noPayload = await offline([]);
      expect(noPayload.code).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("telemetry and keys", () => {
  test("telemetry send reads NDJSON from stdin, or one event from flags", async () => {
    const source = `cli-${crypto.randomUUID().slice(0, 8)}`;
    const at = new Date().toISOString();
    const ndjson = [1, 2, 3]
      .map((i) => JSON.stringify({ type: "job", source, severity: "info", occurred_at: at, attributes: { i } }))
      .join("\n");
    const fromStdin = await cli(["telemetry", "send", "--file", "-", "--json"], { as: "service", stdin: ndjson });
    expect(fromStdin.code).toBe(0);
    expect(JSON.parse(fromStdin.stdout)).toEqual({ received: 3, accepted: 3, duplicates: 0 });

    const single = await cli(["telemetry", "send", "--type", "job", "--source", source, "--severity", "warn"], { as: "service" });
    expect(single.code).toBe(0);
    expect(single.stdout).toMatch(/^accepted:\s+1$/m);
  });

  test("keys create prints the new key once; list shows it; revoke revokes it", async () => {
    const created = await cli(["keys", "create", "--name", "cli-made", "--role", "readonly", "--json"]);
    expect(created.code).toBe(0);
    const key = JSON.parse(created.stdout);
    expect(key.key).toMatch(/^arb_/);

    const list = await cli(["keys", "list", "--role", "readonly", "--all"]);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(key.id);
    expect(list.stdout).not.toContain(key.key);

    const revoked = await cli(["keys", "revoke", key.id]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toMatch(/^status:\s+revoked$/m);
    const again = await cli(["keys", "revoke", key.id]);
    expect(again.code).toBe(1);
  });
});

describe("operators", () => {
  test("create a person, give them a key made for them and one made before, list them, disable them", async () => {
    const email = `grace.${crypto.randomUUID().slice(0, 8)}@example.com`;
    const created = await cli(["operators", "create", "--name", "Grace Hopper", "--role", "operator", "--email", email, "--json"]);
    expect(created.code).toBe(0);
    const person = JSON.parse(created.stdout);
    expect(person).toMatchObject({ name: "Grace Hopper", role: "operator", email, status: "active" });

    const theirs = JSON.parse(
      (await cli(["keys", "create", "--name", "grace-cli", "--role", "operator", "--operator", person.id, "--json"])).stdout,
    );
    expect(theirs.operator_id).toBe(person.id);
    const older = JSON.parse((await cli(["keys", "create", "--name", "grace-old", "--role", "readonly", "--json"])).stdout);
    const assigned = await cli(["operators", "assign-key", person.id, older.id]);
    expect(assigned.code).toBe(0);
    expect(assigned.stdout).toMatch(new RegExp(`^operator_id:\\s+${person.id}$`, "m"));

    const list = await cli(["operators", "list", "--status", "active", "--all"]);
    expect(list.stdout).toContain(person.id);
    expect(list.stdout).toContain(email);

    const disabled = await cli(["operators", "disable", person.id, "--json"]);
    expect(disabled.code).toBe(0);
    expect(JSON.parse(disabled.stdout).revoked_key_ids.sort()).toEqual([theirs.id, older.id].sort());
    const again = await cli(["operators", "disable", person.id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("operator_disabled");
  });
});

describe("exit codes and secrecy", () => {
  test("an API error exits 1 with its code; the configured key is never printed", async () => {
    const missing = await cli(["decisions", "get", crypto.randomUUID()]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^arbiter: not_found: .*\(HTTP 404, request \S+\)$/m);
    expect(missing.stdout).toBe("");

    const decision = await createDecision();
    const forbidden = await cli(["decisions", "approve", decision.id, "--key", t.keys.readonly], { as: null });
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toContain("forbidden");
    const badKey = `arb_${"Z".repeat(49)}`;
    const unknown = await cli(["decisions", "list", "--url", t.url], { as: null, env: { ARBITER_API_KEY: badKey } });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("invalid_key");
    for (const run of [missing, forbidden, unknown]) {
      for (const secret of [t.keys.admin, t.keys.readonly, badKey]) expect(run.stdout + run.stderr).not.toContain(secret);
    }
  });

  test("usage errors exit 2 and name the problem", async () => {
    const cases: [string[], RegExp][] = [
      [["decisions", "explode"], /unknown command "decisions explode"/],
      [["decisions", "get"], /missing <id>/],
      [["decisions", "get", "a", "b"], /unexpected argument "b"/],
      [["decisions", "list", "--colour"], /unknown option --colour/],
      [["decisions", "list", "--limit", "ten"], /--limit must be a whole number/],
      [["decisions", "create", "--kind", "x", "--title", "t", "--payload", "{nope"], /--payload must be valid JSON/],
      [["decisions", "reject", crypto.randomUUID()], /--reason is required/],
      [["telemetry", "send", "--file", "/nonexistent/events.json"], /cannot read/],
    ];
    for (const [args, message] of cases) {
      const run = await cli(args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toMatch(message);
    }
    const noUrl = await cli(["decisions", "list"], { env: { ARBITER_URL: "" } });
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain("ARBITER_URL");
    const noKey = await cli(["decisions", "list"], { as: null });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain("ARBITER_API_KEY");
  });

  test("help lists every command and exits 0", async () => {
    const help = await cli(["help"], { as: null });
    expect(help.code).toBe(0);
    for (const command of [
      "decisions list",
      "decisions wait",
      "telemetry send",
      "keys create",
      "keys revoke",
      "operators create",
      "operators disable",
      "policies create",
      "policies replay",
    ]) {
      expect(help.stdout).toContain(`arbiter ${command}`);
    }
  });
});
