import { z } from "@hono/zod-openapi";
import { SEVERITIES } from "../db/schema";
import { IsoInstant } from "../http/instant";
import { PaginationQuery } from "../http/pagination";

export const MAX_BATCH = 1_000;
/** serialized size cap of one event's `attributes` */
export const MAX_ATTRIBUTES_BYTES = 16 * 1024;
const utf8 = new TextEncoder();
/** A UTF-16 code unit is at most 3 UTF-8 bytes: short text needs no encoding to be known to fit. */
const fitsInUtf8 = (text: string, maxBytes: number) => text.length * 3 <= maxBytes || utf8.encode(text).length <= maxBytes;
/** accepted clock skew: events may not claim to have happened further in the future than this */
export const MAX_FUTURE_SKEW_MS = 5 * 60_000;
const MAX_SNAPSHOT_METRICS = 200;

const name = (what: string) =>
  z
    .string()
    .trim()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, `${what} may hold letters, digits and . _ : / - (starting with a letter or digit)`);
const instant = IsoInstant.transform((value) => new Date(value));

export const TelemetryEventInput = z
  .object({
    id: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9._:-]+$/, "id may hold letters, digits and . _ : -")
      .optional()
      .openapi({ description: "your id for the event; a retried batch with the same ids is not counted twice" }),
    type: name("type"),
    source: name("source"),
    severity: z.enum(SEVERITIES),
    occurred_at: instant.openapi({ type: "string", format: "date-time" }),
    attributes: z
      .record(z.string().max(256), z.unknown())
      .default({})
      .refine((value) => fitsInUtf8(JSON.stringify(value), MAX_ATTRIBUTES_BYTES), {
        message: `attributes must serialize to at most ${MAX_ATTRIBUTES_BYTES} bytes`,
      }),
    trace_id: z
      .string()
      .regex(/^[0-9a-f]{32}$/, "trace_id is 32 lowercase hex digits (W3C trace id)")
      .refine((value) => !/^0+$/.test(value), "trace_id must not be all zeros")
      .optional(),
  })
  .strict();
export type TelemetryEventInput = z.output<typeof TelemetryEventInput>;

export const TelemetryBatchInput = z
  .object({ events: z.array(TelemetryEventInput).min(1).max(MAX_BATCH) })
  .strict()
  .openapi("TelemetryBatch");

/**
 * The batch compiled by Zod (z.compile: generated code that checks the whole batch in one flat
 * function and, on any failure, hands it to Zod's runtime parser, so results and issues are Zod's
 * own). About 5× faster on a 1,000-event batch. Where code cannot be generated (no `new Function`)
 * it is the schema itself.
 */
export const CompiledTelemetryBatchInput = z.compile(TelemetryBatchInput);
// The route's validator (@hono/zod-validator) calls safeParseAsync, and Zod runs an async parse on
// its runtime parser only (compiled code is synchronous). Nothing in this schema is async, so the
// synchronous compiled parse gives the same answer; test/telemetry/schemas.test.ts compares them.
// Only this method is replaced: the OpenAPI document and the types still come from the schema.
TelemetryBatchInput.safeParseAsync = async (data, params) => CompiledTelemetryBatchInput.safeParse(data, params);

export const TelemetryBatchAccepted = z
  .object({
    received: z.number().int(),
    accepted: z.number().int().openapi({ description: "events stored by this request" }),
    duplicates: z.number().int().openapi({ description: "events whose id was already stored (or repeated in the batch)" }),
  })
  .openapi("TelemetryBatchAccepted");

export const TelemetryEvent = z
  .object({
    id: z.string(),
    type: z.string(),
    source: z.string(),
    severity: z.enum(SEVERITIES),
    occurred_at: z.string(),
    received_at: z.string(),
    attributes: z.record(z.string(), z.unknown()),
    trace_id: z.string().nullable(),
  })
  .openapi("TelemetryEvent");

export const TelemetryEventsQuery = PaginationQuery.extend({
  type: name("type")
    .optional()
    .openapi({ param: { name: "type", in: "query" } }),
  source: name("source")
    .optional()
    .openapi({ param: { name: "source", in: "query" } }),
  severity: z
    .enum(SEVERITIES)
    .optional()
    .openapi({ param: { name: "severity", in: "query" } }),
  from: instant
    .optional()
    .openapi({ param: { name: "from", in: "query" }, type: "string", format: "date-time", description: "occurred_at ≥ from" }),
  to: instant
    .optional()
    .openapi({ param: { name: "to", in: "query" }, type: "string", format: "date-time", description: "occurred_at < to" }),
});

export const SnapshotInput = z
  .object({
    source: name("source"),
    at: instant.optional().openapi({ type: "string", format: "date-time", description: "defaults to the time received" }),
    metrics: z
      .record(z.string().min(1).max(128), z.number().finite())
      .refine((value) => Object.keys(value).length >= 1 && Object.keys(value).length <= MAX_SNAPSHOT_METRICS, {
        message: `metrics must hold 1 to ${MAX_SNAPSHOT_METRICS} entries`,
      }),
  })
  .strict()
  .openapi("SnapshotInput");

export const Snapshot = z
  .object({ id: z.string(), source: z.string(), at: z.string(), metrics: z.record(z.string(), z.number()), received_at: z.string() })
  .openapi("Snapshot");

export const LatestSnapshotQuery = z.strictObject({ source: name("source").openapi({ param: { name: "source", in: "query" } }) });

/** `30s`, `5m`, `1h`, `1d` → seconds */
const BUCKET_UNITS = { s: 1, m: 60, h: 3_600, d: 86_400 } as const;
export const MAX_BUCKETS = 10_000;
const bucket = z
  .string()
  .regex(/^[1-9][0-9]{0,5}[smhd]$/, "bucket is a number and a unit: s, m, h or d (e.g. 5m)")
  .transform((value) => Number(value.slice(0, -1)) * BUCKET_UNITS[value.at(-1) as keyof typeof BUCKET_UNITS])
  .refine((seconds) => seconds <= 31 * 86_400, "bucket may be at most 31 days");

export const SnapshotSeriesQuery = z.strictObject({
  source: name("source").openapi({ param: { name: "source", in: "query" } }),
  metric: z
    .string()
    .min(1)
    .max(128)
    .openapi({ param: { name: "metric", in: "query" } }),
  from: instant.openapi({ param: { name: "from", in: "query" }, type: "string", format: "date-time", description: "at ≥ from" }),
  to: instant.openapi({ param: { name: "to", in: "query" }, type: "string", format: "date-time", description: "at < to" }),
  bucket: bucket.openapi({ param: { name: "bucket", in: "query" }, type: "string", example: "5m" }),
});

export const SnapshotSeries = z
  .object({
    source: z.string(),
    metric: z.string(),
    bucket_seconds: z.number().int(),
    from: z.string(),
    to: z.string(),
    data: z.array(z.object({ bucket_start: z.string(), avg: z.number(), min: z.number(), max: z.number(), count: z.number().int() })),
  })
  .openapi("SnapshotSeries");
