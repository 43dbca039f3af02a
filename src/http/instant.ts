import { z } from "@hono/zod-openapi";

/**
 * The instants every layer agrees on: years 0001 to 9999 in UTC. An ISO 8601 string can name more
 * (`0000-…`, or `9999-12-31T23:59:59-23:59`, which is year 10000 in UTC), and a JS Date holds it,
 * but PostgreSQL's timestamptz input refuses it: without this bound such a value is a 500, not a 400.
 */
const MIN_INSTANT_MS = -62_135_596_800_000; // 0001-01-01T00:00:00.000Z
const MAX_INSTANT_MS = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

export const inInstantRange = (ms: number) => ms >= MIN_INSTANT_MS && ms <= MAX_INSTANT_MS;

/** An ISO 8601 date-time with an offset (`Z` or `±hh:mm`), between years 0001 and 9999 in UTC. */
export const IsoInstant = z.iso
  .datetime({ offset: true })
  .refine((value) => inInstantRange(Date.parse(value)), "must lie between the years 0001 and 9999 (UTC)");
