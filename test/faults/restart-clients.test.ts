import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { and, eq } from "drizzle-orm";
import { generateApiKey } from "../../src/auth/key-format";
import { loadConfig } from "../../src/config";
import { decisionEvents } from "../../src/db/schema";
import { openDatabase } from "../../src/deps";
import { readSse } from "../decisions/helpers";
import { within } from "../foundation/support";
import { reportFault, storedCopies } from "./summary";
import { type RestartableArbiter, restartableArbiter } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * A long-poll and an event stream open when Arbiter restarts (SIGTERM, then a new process on the
 * same database): both get a clean end at once, reconnect to the new process, and receive the
 * verdict given after the restart; the stream resumes from its Last-Event-ID without a gap.
 */
const service = generateApiKey();
const operator = generateApiKey();
let arbiters: RestartableArbiter;

beforeAll(async () => {
  arbiters = await restartableArbiter("restart-clients", { ARBITER_API_KEYS: `service:${service},operator:${operator}` });
});
afterAll(() => arbiters?.remove());

const as = (key: string, extra: Record<string, string> = {}) => ({ "X-API-Key": key, "Content-Type": "application/json", ...extra });

test("long-poll and stream across a restart: clean end, reconnect, the verdict given after the restart arrives", async () => {
  const first = await arbiters.start();
  const created = await fetch(`${first.url}/v1/decisions`, {
    method: "POST",
    headers: as(service),
    body: JSON.stringify({ kind: "deploy", title: "across a restart", payload: { v: 1 } }),
  });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: string };

  const stream = await fetch(`${first.url}/v1/decisions/stream?last_event_id=0`, { headers: as(operator) });
  const beforeRestart = readSse(stream, 100);
  const poll = fetch(`${first.url}/v1/decisions/${id}?wait=55`, { headers: as(service) });
  await Bun.sleep(300);

  const stopping = performance.now();
  first.arbiter.proc.kill("SIGTERM");
  // The long-poll answers with the current state and the stream ends, at once rather than at the drain bound.
  const polled = await within(poll, 5_000, "the long-poll's answer at shutdown");
  expect([200, 503]).toContain(polled.status);
  if (polled.status === 200) expect(((await polled.json()) as { status: string }).status).toBe("pending");
  const seen = await within(beforeRestart, 5_000, "the stream's end at shutdown");
  expect(seen.map((e) => e.event)).toEqual(["created"]);
  expect(await within(first.arbiter.exited, 10_000, "the old process's exit")).toBe(0);
  const exitedAt = performance.now();
  const endedMs = exitedAt - stopping;

  const second = await arbiters.start();
  const restartMs = performance.now() - exitedAt;
  const resumed = await fetch(`${second.url}/v1/decisions/stream`, { headers: as(operator, { "Last-Event-ID": seen.at(-1)?.id ?? "0" }) });
  const afterRestart = readSse(resumed, 1);
  const repoll = fetch(`${second.url}/v1/decisions/${id}?wait=55`, { headers: as(service) });
  await Bun.sleep(300);
  const approved = await fetch(`${second.url}/v1/decisions/${id}/approve`, { method: "POST", headers: as(operator), body: "{}" });
  expect(approved.status).toBe(200);

  const verdict = await within(repoll, 10_000, "the verdict on the new process");
  expect(((await verdict.json()) as { status: string }).status).toBe("approved");
  const events = await within(afterRestart, 10_000, "the approved event on the resumed stream");
  expect(events.map((e) => e.event)).toEqual(["approved"]);
  expect(Number(events[0]?.id)).toBeGreaterThan(Number(seen.at(-1)?.id));
  expect((events[0]?.data as { decision?: { status: string } } | undefined)?.decision?.status).toBe("approved");
  console.log(`restart-clients: held clients ended ${Math.round(endedMs)} ms after SIGTERM; reconnected and got the verdict`);
  second.arbiter.proc.kill("SIGTERM");
  expect(await second.arbiter.exited).toBe(0);

  // The writes, looked up in the database: the create (by its title) and the approval given after
  // the restart (by its audit event: exactly one).
  const database = await openDatabase(loadConfig(arbiters.env));
  try {
    const stored = await storedCopies(database.db, { decisions: new Map([["across a restart", id]]) });
    const approvals = await database.db
      .select({ id: decisionEvents.id })
      .from(decisionEvents)
      .where(and(eq(decisionEvents.decisionId, id), eq(decisionEvents.type, "approved")));
    reportFault({
      fault: "Arbiter restarted (SIGTERM) under a held long-poll and event stream",
      requests: 6,
      outage503s: polled.status === 503 ? 1 : 0,
      serverErrorsOutside: [created, approved, resumed, verdict].filter((r) => r.status >= 500).length,
      acknowledgedWrites: stored.writes + 1,
      lost: stored.lost + (approvals.length === 0 ? 1 : 0),
      duplicates: stored.duplicates + Math.max(0, approvals.length - 1),
      recovery: {
        ms: restartMs,
        what: `new process listening after the old one exited; held clients ended ${Math.round(endedMs)} ms after SIGTERM`,
      },
    });
  } finally {
    await database.close();
  }
}, 240_000);
