import { type Column, getTableColumns, type Table } from "drizzle-orm";

const columnsByTable = new WeakMap<Table, [string, Column][]>();

/**
 * A row that raw SQL returned (`returning *`, `select * from` a CTE) as the query builder would
 * have mapped it: field names, and each value through its column's driver mapping (timestamps to
 * Dates and so on), so raw statements and builder queries hand services the same row type.
 */
export function rowFromDriver<T extends Table>(table: T, raw: Record<string, unknown>): T["$inferSelect"] {
  let columns = columnsByTable.get(table);
  if (!columns) columnsByTable.set(table, (columns = Object.entries(getTableColumns(table))));
  const row: Record<string, unknown> = {};
  for (const [field, column] of columns) {
    const value = raw[column.name];
    row[field] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return row as T["$inferSelect"];
}
