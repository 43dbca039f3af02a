import type { AppDeps } from "../deps";
import { errorResponses } from "../http/errors";
import { createRouter, defineRoute, json } from "../http/openapi";
import { pageSchema } from "../http/pagination";
import {
  LatestSnapshotQuery,
  Snapshot,
  SnapshotInput,
  SnapshotSeries,
  SnapshotSeriesQuery,
  TelemetryBatchAccepted,
  TelemetryBatchInput,
  TelemetryEvent,
  TelemetryEventsQuery,
} from "./schemas";
import {
  ingestEvents,
  latestSnapshot,
  listEvents,
  recordSnapshot,
  snapshotSeries,
  type TelemetryDeps,
  telemetryInstruments,
} from "./service";

const postEvents = defineRoute("telemetry:write", {
  operationId: "recordTelemetryEvents",
  method: "post",
  path: "/v1/telemetry/events",
  tags: ["telemetry"],
  summary: "Ingest a batch of 1 to 1,000 events (all or nothing; known ids are skipped)",
  request: { body: { required: true, content: json(TelemetryBatchInput) } },
  responses: { 202: { description: "Stored; duplicates counted, not stored again", content: json(TelemetryBatchAccepted) } },
});

const getEvents = defineRoute("telemetry:read", {
  operationId: "listTelemetryEvents",
  method: "get",
  path: "/v1/telemetry/events",
  tags: ["telemetry"],
  summary: "List events, newest received first",
  request: { query: TelemetryEventsQuery },
  responses: { 200: { description: "A page of events", content: json(pageSchema(TelemetryEvent)) } },
});

const postSnapshot = defineRoute("telemetry:write", {
  operationId: "recordSnapshot",
  method: "post",
  path: "/v1/telemetry/snapshots",
  tags: ["telemetry"],
  summary: "Record a snapshot of a source's gauges; the latest is cached",
  request: { body: { required: true, content: json(SnapshotInput) } },
  responses: { 201: { description: "Stored", content: json(Snapshot) } },
});

const getLatest = defineRoute("telemetry:read", {
  operationId: "getLatestSnapshot",
  method: "get",
  path: "/v1/telemetry/snapshots/latest",
  tags: ["telemetry"],
  summary: "A source's latest snapshot (cache first, database when the cache misses or is down)",
  request: { query: LatestSnapshotQuery },
  responses: { 200: { description: "The latest snapshot; X-Cache says hit or miss", content: json(Snapshot) }, ...errorResponses(404) },
});

const getSeries = defineRoute("telemetry:read", {
  operationId: "listSnapshotSeries",
  method: "get",
  path: "/v1/telemetry/snapshots",
  tags: ["telemetry"],
  summary: "One metric of a source per time bucket: avg, min, max, count",
  request: { query: SnapshotSeriesQuery },
  responses: { 200: { description: "Buckets holding at least one value, oldest first", content: json(SnapshotSeries) } },
});

export function telemetryRoutes(deps: AppDeps) {
  const service: TelemetryDeps = {
    db: deps.database.db,
    copyIn: deps.database.copyIn,
    cache: deps.cache,
    clock: deps.clock,
    logger: deps.logger,
    instruments: telemetryInstruments(deps.meter),
    retentionDays: deps.config.TELEMETRY_RETENTION_DAYS,
    snapshotTtlMs: deps.config.TELEMETRY_SNAPSHOT_CACHE_TTL_SECONDS * 1000,
  };
  return createRouter()
    .openapi(postEvents, async (c) => {
      const { events } = c.req.valid("json");
      return c.json(await ingestEvents({ ...service, logger: c.get("logger") }, events, c.get("principal")?.keyId), 202);
    })
    .openapi(getEvents, async (c) => c.json(await listEvents(service, c.req.valid("query")), 200))
    .openapi(postSnapshot, async (c) => c.json(await recordSnapshot({ ...service, logger: c.get("logger") }, c.req.valid("json")), 201))
    .openapi(getLatest, async (c) => {
      const { snapshot, cached } = await latestSnapshot({ ...service, logger: c.get("logger") }, c.req.valid("query").source);
      return c.json(snapshot, 200, { "X-Cache": cached ? "hit" : "miss", "Cache-Control": "no-store" });
    })
    .openapi(getSeries, async (c) => {
      const query = c.req.valid("query");
      return c.json(await snapshotSeries(service, { ...query, bucketSeconds: query.bucket }), 200);
    });
}
