import { z } from "@hono/zod-openapi";
import { type AnyColumn, type SQL, sql } from "drizzle-orm";
import { isUuid } from "../db/ids";
import { badRequest } from "./errors";
import { isStorableText } from "./input-guard";
import { inInstantRange } from "./instant";

/**
 * The one list convention: `?limit=&cursor=` → `{ data, next_cursor }`, keyset on (created_at, id),
 * newest first. Cursors are opaque base64url; a malformed one is a 400, never a silent restart.
 */
export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 500;

// Strict: a misspelt filter (`?sevrity=error`) is a 400, never silently ignored into a wider result.
export const PaginationQuery = z.strictObject({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_LIMIT)
    .default(DEFAULT_LIMIT)
    .openapi({ param: { name: "limit", in: "query" }, example: DEFAULT_LIMIT }),
  cursor: z
    .string()
    .max(256)
    .optional()
    .openapi({ param: { name: "cursor", in: "query" }, description: "next_cursor from the previous page" }),
});

export const pageSchema = <T extends z.ZodTypeAny>(item: T) => z.object({ data: z.array(item), next_cursor: z.string().nullable() });

export interface Cursor {
  createdAt: Date;
  id: string;
}

export function encodeCursor(cursor: Cursor): string {
  const json = JSON.stringify([cursor.createdAt.getTime(), cursor.id]);
  return btoa(json).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function decodeCursor(raw: string): Cursor {
  try {
    const json = atob(raw.replaceAll("-", "+").replaceAll("_", "/"));
    const [ms, id] = JSON.parse(json) as unknown[];
    // A safe integer can still lie outside the range PostgreSQL accepts, and an id holding NUL fails
    // any statement it is bound to: either would be a 500 instead of this 400.
    if (
      typeof ms === "number" &&
      Number.isSafeInteger(ms) &&
      inInstantRange(ms) &&
      typeof id === "string" &&
      id.length > 0 &&
      id.length <= 128 &&
      isStorableText(id)
    ) {
      return { createdAt: new Date(ms), id };
    }
  } catch {
    // fall through to the 400 below
  }
  throw invalidCursor();
}

const invalidCursor = () => badRequest("invalid_cursor", "cursor is malformed; pass next_cursor from a previous page unchanged");

/**
 * The keyset condition for the page after `cursor`, newest first. Cursors hold milliseconds, so
 * `created_at` must be written from the application clock (a JS Date), not by the database.
 */
export function afterCursor(createdAt: AnyColumn, id: AnyColumn, cursor: string | undefined): SQL | undefined {
  if (!cursor) return undefined;
  const { createdAt: at, id: lastId } = decodeCursor(cursor);
  // A forged id that is no UUID would make PostgreSQL reject the query: a 500 instead of this 400.
  if (id.columnType === "PgUUID" && !isUuid(lastId)) throw invalidCursor();
  return sql`(${createdAt}, ${id}) < (${at.toISOString()}::timestamptz, ${lastId})`;
}

/**
 * Rows fetched with `limit + 1` → one page: the extra row only tells whether another page exists.
 */
export function toPage<Row extends { createdAt: Date; id: string }, Out>(
  rows: Row[],
  limit: number,
  present: (row: Row) => Out,
): { data: Out[]; next_cursor: string | null } {
  const pageRows = rows.slice(0, limit);
  const last = pageRows.at(-1);
  return {
    data: pageRows.map(present),
    next_cursor: rows.length > limit && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null,
  };
}
