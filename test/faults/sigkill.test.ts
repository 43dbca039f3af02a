import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { generateApiKey } from "../../src/auth/key-format";
import { loadConfig } from "../../src/config";
import { decisions, telemetryEvents } from "../../src/db/schema";
import { openDatabase } from "../../src/deps";
import { reportFault, storedCopies } from "./summary";
import { type RestartableArbiter, restartableArbiter } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * Arbiter killed with SIGKILL in the middle of a write load, again and again, on the tier's
 * database (a scratch database on PostgreSQL, or an embedded PGlite directory that must reopen
 * without corruption each time), then once with SIGTERM: every request that got a 2xx is stored exactly once, and a client
 * that retries every unanswered request with the same idempotency key (decisions) or event id
 * (telemetry) ends with no duplicates.
 */
const KILLS = 5;
/** five crashes, then a graceful stop, which must also finish what is in flight (exit 0) */
const SIGNALS = [...Array.from({ length: KILLS }, () => "SIGKILL" as const), "SIGTERM" as const];
const WORKERS = 4;
const key = generateApiKey();
let arbiters: RestartableArbiter;

beforeAll(async () => {
  arbiters = await restartableArbiter("sigkill", { ARBITER_API_KEYS: `admin:${key}` });
});
afterAll(() => arbiters?.remove());

interface Write {
  kind: "decision" | "event";
  /** the idempotency key or event id the client retries with */
  token: string;
  body: unknown;
  answered?: number;
  decisionId?: string;
}

async function send(url: string, write: Write): Promise<void> {
  const headers: Record<string, string> = { "X-API-Key": key, "Content-Type": "application/json" };
  if (write.kind === "decision") headers["Idempotency-Key"] = write.token;
  const path = write.kind === "decision" ? "/v1/decisions" : "/v1/telemetry/events";
  try {
    const res = await fetch(url + path, { method: "POST", headers, body: JSON.stringify(write.body) });
    const body = (await res.json()) as { id?: string };
    write.answered = res.status;
    if (write.kind === "decision" && res.ok) write.decisionId = body.id;
  } catch {
    // The process died before answering: unanswered, to be retried.
  }
}

test(`${KILLS} SIGKILLs and a SIGTERM under write load: every acknowledged write stored once, retries add no duplicates`, async () => {
  const writes: Write[] = [];
  /** ms from the previous process's exit to the next one listening (the first start is not a recovery) */
  const restartsMs: number[] = [];
  let exitedAt: number | undefined;
  for (const [round, signal] of SIGNALS.entries()) {
    const { arbiter, url } = await arbiters.start();
    if (exitedAt !== undefined) restartsMs.push(performance.now() - exitedAt);
    let running = true;
    const worker = async (w: number) => {
      for (let i = 0; running; i++) {
        const token = `r${round}-w${w}-${i}`;
        const write: Write =
          i % 2 === 0
            ? { kind: "decision", token, body: { kind: "deploy", title: token, payload: { token } } }
            : {
                kind: "event",
                token: crypto.randomUUID(),
                body: { events: [{ type: "deploy", source: "sigkill", severity: "info", occurred_at: new Date().toISOString() }] },
              };
        if (write.kind === "event") (write.body as { events: { id?: string }[] }).events[0]!.id = write.token;
        writes.push(write);
        await send(url, write);
        if (write.answered === undefined) return; // the server is gone
      }
    };
    const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));
    await Bun.sleep(300 + round * 60);
    arbiter.proc.kill(signal);
    running = false;
    await Promise.all(workers);
    const code = await arbiter.exited;
    exitedAt = performance.now();
    if (signal === "SIGTERM") expect(code).toBe(0);
  }

  // A client retrying everything that went unanswered, after one more (clean) start.
  const { arbiter, url } = await arbiters.start();
  restartsMs.push(performance.now() - (exitedAt as number));
  const unanswered = writes.filter((w) => w.answered === undefined);
  for (const write of unanswered) await send(url, write);
  arbiter.proc.kill("SIGTERM");
  expect(await arbiter.exited).toBe(0);

  const failures = writes.filter((w) => w.answered !== undefined && (w.answered < 200 || w.answered >= 300));
  expect(failures.map((w) => `${w.kind} ${w.token}: ${w.answered}`)).toEqual([]);
  expect(unanswered.every((w) => w.answered !== undefined && w.answered < 300)).toBe(true);

  const database = await openDatabase(loadConfig(arbiters.env));
  try {
    const storedDecisions = await database.db.select({ id: decisions.id, title: decisions.title }).from(decisions);
    const storedEvents = await database.db.select({ id: telemetryEvents.id }).from(telemetryEvents);
    const sentDecisions = writes.filter((w) => w.kind === "decision");
    const sentEvents = writes.filter((w) => w.kind === "event");
    // Exactly one decision per idempotency key, and it is the one every answer named.
    expect(storedDecisions.length).toBe(sentDecisions.length);
    expect(new Set(storedDecisions.map((d) => d.title)).size).toBe(storedDecisions.length);
    const byTitle = new Map(storedDecisions.map((d) => [d.title, d.id]));
    for (const write of sentDecisions) expect(byTitle.get(write.token)).toBe(write.decisionId as string);
    expect(storedEvents.length).toBe(sentEvents.length);
    const eventIds = new Set(storedEvents.map((e) => e.id));
    for (const write of sentEvents) expect(eventIds.has(write.token)).toBe(true);
    console.log(
      `sigkill: ${KILLS} kills and a SIGTERM, ${writes.length} writes (${sentDecisions.length} decisions, ${sentEvents.length} events), ` +
        `${unanswered.length} unanswered and retried, 0 lost, 0 duplicates`,
    );
    // Every write ends acknowledged (first time, or on its retry): all of them are looked up.
    const stored = await storedCopies(database.db, {
      decisions: new Map(sentDecisions.map((w) => [w.token, w.decisionId as string])),
      events: sentEvents.map((w) => w.token),
    });
    reportFault({
      fault: `Arbiter killed ${KILLS} times with SIGKILL and once with SIGTERM during a write load, unanswered writes retried`,
      requests: writes.length + unanswered.length,
      // The kills are the outage: a request in flight then gets no answer at all, never a 5xx.
      outage503s: 0,
      serverErrorsOutside: writes.filter((w) => (w.answered ?? 0) >= 500).length,
      acknowledgedWrites: stored.writes,
      lost: stored.lost,
      duplicates: stored.duplicates,
      recovery: {
        ms: Math.max(...restartsMs),
        what: `slowest of ${restartsMs.length} restarts, exit to listening (${restartsMs.map(Math.round).join(", ")} ms)`,
      },
    });
  } finally {
    await database.close();
  }
}, 300_000);
