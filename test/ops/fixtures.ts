import { asc, sql } from "drizzle-orm";
import { createApiKey } from "../../src/auth/api-keys";
import type { Database } from "../../src/db/client";
import { uuidv7 } from "../../src/db/ids";
import {
  apiKeys,
  authEvents,
  decisionEvents,
  decisions,
  operatorSessions,
  signingKeys,
  telemetryEvents,
  telemetrySnapshots,
  webhookDeliveries,
} from "../../src/db/schema";

/** Writes rows into every application table, through the app's own code where it has some. */
export async function seedEveryTable(db: Database, now = new Date("2026-01-02T03:04:05.678Z"), tag = "seed"): Promise<void> {
  const { row: key } = await createApiKey(db, { name: `${tag}-admin`, role: "admin", metadata: { note: "ünïcode ✓" } }, now);
  await db
    .insert(operatorSessions)
    .values({ id: uuidv7(), keyId: key.id, permissions: ["decisions:read"], expiresAt: new Date(now.getTime() + 60_000) });
  await db
    .insert(signingKeys)
    .values({ kid: `${tag}-kid`, alg: "EdDSA", privateJwk: { kty: "OKP", d: "x" }, publicJwk: { kty: "OKP", x: "y" } });
  await db.insert(authEvents).values({ id: uuidv7(), actorKeyId: key.id, action: "key.create", outcome: "success", createdAt: now });
  const decisionId = uuidv7();
  await db.insert(decisions).values({
    id: decisionId,
    kind: "deploy",
    title: `${tag}: ship it?`,
    payload: { service: "api", version: 3, nested: { list: [1, 2.5, null] } },
    payloadHash: "0".repeat(64),
    requesterKeyId: key.id,
    requesterPersonId: key.id,
    expiresAt: new Date(now.getTime() + 3_600_000),
    createdAt: now,
  });
  await db.insert(decisionEvents).values({ decisionId, type: "created", toStatus: "pending", actorKeyId: key.id });
  await db
    .insert(webhookDeliveries)
    .values({ id: uuidv7(), decisionId, url: "https://hooks.example/x", attempt: 1, statusCode: 500, error: "boom" });
  await db.insert(telemetryEvents).values(
    Array.from({ length: 25 }, (_, i) => ({
      id: `${tag}-evt-${i}`,
      type: "agent.step",
      source: `agent-${i % 3}`,
      severity: "info" as const,
      occurredAt: new Date(now.getTime() + i),
      attributes: { i, ok: i % 2 === 0 },
    })),
  );
  await db.insert(telemetrySnapshots).values({ id: uuidv7(), source: "agent-0", at: now, metrics: { cpu: 0.5, rps: 12 } });
}

/** Every row of every application table, in a stable order, for "identical data" comparisons. */
export async function readEveryTable(db: Database): Promise<Record<string, unknown[]>> {
  return {
    api_keys: await db.select().from(apiKeys).orderBy(asc(apiKeys.id)),
    operator_sessions: await db.select().from(operatorSessions).orderBy(asc(operatorSessions.id)),
    signing_keys: await db.select().from(signingKeys).orderBy(asc(signingKeys.kid)),
    auth_events: await db.select().from(authEvents).orderBy(asc(authEvents.id)),
    decisions: await db.select().from(decisions).orderBy(asc(decisions.id)),
    decision_events: await db.select().from(decisionEvents).orderBy(asc(decisionEvents.id)),
    webhook_deliveries: await db.select().from(webhookDeliveries).orderBy(asc(webhookDeliveries.id)),
    telemetry_events: await db.select().from(telemetryEvents).orderBy(asc(telemetryEvents.id)),
    telemetry_snapshots: await db.select().from(telemetrySnapshots).orderBy(asc(telemetrySnapshots.id)),
  };
}

/** Empties every application table (the "disaster" before a restore). */
export async function wipeEveryTable(db: Database): Promise<void> {
  await db.execute(
    sql.raw(
      "truncate api_keys, operator_sessions, signing_keys, auth_events, decisions, decision_events, webhook_deliveries, telemetry_events, telemetry_snapshots restart identity cascade",
    ),
  );
}
