import { asc, eq } from "drizzle-orm";
import { createApiKey } from "../../src/auth/api-keys";
import { decisionEvents, type Role } from "../../src/db/schema";
import type { Clock } from "../../src/deps";
import type { TestApp } from "../helpers/app";
import { openSharedTestDatabase } from "../helpers/db";

/** A clock tests move by hand, so expiry and webhook backoff need no sleeping. */
export function manualClock(start = new Date()): Clock & { advance(ms: number): void } {
  let now = start.getTime();
  return {
    now: () => new Date(now),
    advance(ms: number) {
      now += ms;
    },
  };
}

/** a parsed response body; tests assert it field by field */
// biome-ignore lint/suspicious/noExplicitAny: the assertions themselves check the shape
export type JsonBody = Record<string, any>;

export const samplePayload = { service: "checkout", version: "2.4.1", rollout: { percent: 100, regions: ["eu-west-1", "us-east-1"] } };

/** Creates a decision as `as` (service by default) and returns its JSON body; fails the test on a non-2xx. */
export async function createDecision(
  t: TestApp,
  body: Record<string, unknown> = {},
  as: Role = "service",
  headers: Record<string, string> = {},
) {
  const res = await t.request("/v1/decisions", {
    method: "POST",
    as,
    headers,
    json: { kind: "deploy", title: "Deploy checkout 2.4.1", payload: samplePayload, ...body },
  });
  if (res.status !== 201 && res.status !== 200) throw new Error(`create answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as JsonBody;
}

export async function act(t: TestApp, id: string, verb: string, as: Role, json?: unknown) {
  return t.request(`/v1/decisions/${id}/${verb}`, { method: "POST", as, ...(json === undefined ? {} : { json }) });
}

/** Another key of `role` in the app's database (quorum and ownership tests need several). */
export async function extraKey(t: TestApp, role: Role, name = `extra-${role}-${crypto.randomUUID().slice(0, 8)}`) {
  const created = await createApiKey(t.deps.database.db, { name, role }, t.deps.clock.now());
  return { key: created.key, id: created.row.id };
}

/** fetch with an explicit raw key */
export function requestWithKey(t: TestApp, key: string, path: string, init: { method?: string; json?: unknown } = {}) {
  return fetch(t.url + path, {
    method: init.method ?? "GET",
    headers: { "X-API-Key": key, ...(init.json === undefined ? {} : { "Content-Type": "application/json" }) },
    ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
  });
}

/** every audit row of a decision, oldest first */
export async function auditTrail(t: TestApp, decisionId: string) {
  return t.deps.database.db.select().from(decisionEvents).where(eq(decisionEvents.decisionId, decisionId)).orderBy(asc(decisionEvents.id));
}

/**
 * Two handles on ONE database, as two replicas would have: separate pools (and LISTEN connections)
 * on real PostgreSQL; the same embedded instance on PGlite. Handles close once, from `close`.
 */
/** Two replicas' handles on one database (see openSharedTestDatabase). */
export const sharedDatabase = openSharedTestDatabase;

export interface SseEvent {
  id: string;
  event: string;
  data: JsonBody;
}

/** Reads Server-Sent Events from a response until `count` arrived or `until` holds (then cancels the stream). */
export async function readSse(res: Response, count: number, until: (events: SseEvent[]) => boolean = () => false): Promise<SseEvent[]> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: SseEvent[] = [];
  let buffer = "";
  while (events.length < count && !until(events)) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields = new Map<string, string>();
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const at = line.indexOf(":");
        fields.set(line.slice(0, at), line.slice(at + 1).trimStart());
      }
      if (fields.has("data"))
        events.push({ id: fields.get("id") ?? "", event: fields.get("event") ?? "message", data: JSON.parse(fields.get("data")!) });
    }
  }
  await reader.cancel();
  return events;
}
