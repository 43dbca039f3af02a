/** Human-readable output: aligned tables for lists, `field: value` lines for one record. */

const cell = (value: unknown): string => {
  if (value === null || value === undefined) return "-";
  if (typeof value === "string") return value.replace(/\s+/g, " ");
  return JSON.stringify(value);
};

const MAX_CELL = 60;
const clip = (text: string) => (text.length > MAX_CELL ? `${text.slice(0, MAX_CELL - 1)}…` : text);

/** rows of records → a table with the given columns (header → field) */
export function table<T>(rows: readonly T[], columns: Readonly<Record<string, (row: T) => unknown>>): string {
  const headers = Object.keys(columns);
  const cells = rows.map((row) => headers.map((header) => clip(cell(columns[header]!(row)))));
  const widths = headers.map((header, i) => Math.max(header.length, ...cells.map((line) => line[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((value, i) => value.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(headers), ...cells.map(line)].join("\n");
}

/** one record → `field: value` lines, aligned */
export function record(value: Record<string, unknown>): string {
  const width = Math.max(...Object.keys(value).map((key) => key.length));
  return Object.entries(value)
    .map(([key, field]) => `${`${key}:`.padEnd(width + 1)} ${cell(field)}`)
    .join("\n");
}
