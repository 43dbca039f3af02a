/**
 * Row counts and content checksums of every table Arbiter owns (schema `public`, plus Drizzle's
 * migration journal), computed inside the database so a backup can be compared with what a restore
 * produced without moving the rows out.
 */
export interface TableStat {
  rows: number;
  /** md5 over the md5 of each row's text form, in primary-key order */
  checksum: string;
}
export type TableStats = Record<string, TableStat>;

/** Runs one SQL statement and returns its rows, on whichever backend. */
export type Query = <T>(text: string) => Promise<T[]>;

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Row text depends on these settings (timestamptz above all); both sides of a comparison use the same. */
const STABLE_OUTPUT_SETTINGS = [
  "set TimeZone = 'UTC'",
  "set DateStyle = 'ISO, MDY'",
  "set IntervalStyle = 'postgres'",
  "set extra_float_digits = 1",
];

export async function tableStats(query: Query): Promise<TableStats> {
  for (const setting of STABLE_OUTPUT_SETTINGS) await query(setting);
  const tables = await query<{ schema: string; name: string; pk: string[] | null }>(`
    select n.nspname as schema, c.relname as name,
      (select array_agg(a.attname::text order by array_position(i.indkey::int2[], a.attnum))
         from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
        where i.indrelid = c.oid and i.indisprimary) as pk
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and not c.relispartition and n.nspname in ('public', 'drizzle')
    order by n.nspname, c.relname`);
  const stats: TableStats = {};
  for (const table of tables) {
    const order = table.pk?.length ? table.pk.map((column) => `t.${quoteIdent(column)}`).join(", ") : "t::text";
    const [row] = await query<{ rows: number | string; checksum: string }>(
      `select count(*)::int8 as rows, coalesce(md5(string_agg(md5(t::text), '' order by ${order})), '') as checksum
         from ${quoteIdent(table.schema)}.${quoteIdent(table.name)} t`,
    );
    const key = table.schema === "public" ? table.name : `${table.schema}.${table.name}`;
    stats[key] = { rows: Number(row?.rows ?? 0), checksum: row?.checksum ?? "" };
  }
  return stats;
}

/** Rows over every table, for the scripts' one-line summaries. */
export const totalRows = (stats: TableStats) => Object.values(stats).reduce((sum, table) => sum + table.rows, 0);

/** Tables whose count or checksum differ, as readable lines; empty when the two agree. */
export function compareStats(expected: TableStats, actual: TableStats): string[] {
  const problems: string[] = [];
  for (const [table, want] of Object.entries(expected)) {
    const got = actual[table];
    if (!got) problems.push(`${table}: missing after restore`);
    else if (got.rows !== want.rows) problems.push(`${table}: ${got.rows} rows, expected ${want.rows}`);
    else if (got.checksum !== want.checksum) problems.push(`${table}: content checksum differs`);
  }
  return problems;
}

/** Tables whose rows a migration writes (a counter's one row): present in every migrated database, empty or not. */
const SEEDED_BY_MIGRATIONS = new Set(["policy_generation"]);

/** True when any application table (schema public) holds a row a migration did not write. */
export async function hasApplicationRows(query: Query): Promise<boolean> {
  const tables = await query<{ name: string }>(
    `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p') and n.nspname = 'public'`,
  );
  for (const { name } of tables) {
    if (SEEDED_BY_MIGRATIONS.has(name)) continue;
    const [row] = await query<{ found: boolean }>(`select exists (select 1 from public.${quoteIdent(name)}) as found`);
    if (row?.found) return true;
  }
  return false;
}
