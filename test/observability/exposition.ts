import { spawnSync } from "node:child_process";
import type { TestApp } from "../helpers/app";

/** One sample line of the Prometheus text format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = SAMPLE.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(LABEL)) labels[key!] = value!.replace(/\\(.)/g, "$1");
    samples.push({ name: match[1]!, labels, value: match[3] === "+Inf" ? Number.POSITIVE_INFINITY : Number(match[3]) });
  }
  return samples;
}

/** Sum of the samples named `name` whose labels include every entry of `where`. */
export function total(samples: Sample[], name: string, where: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** Prometheus base units (https://prometheus.io/docs/practices/naming/#base-units) a name may end in. */
const BASE_UNITS = new Set(["seconds", "bytes"]);

/**
 * Families of an exposition that break the Prometheus naming conventions: a counter not ending in
 * `_total`; a `# UNIT` that is not a base unit or is not the end of the name (before `_total`); a
 * HELP text that speaks of seconds or bytes for a family whose name does not end in them.
 */
export function namingViolations(text: string): string[] {
  const families = new Map<string, { help?: string; unit?: string; type?: string }>();
  for (const [, field, name, value] of text.matchAll(/^# (HELP|UNIT|TYPE) (\S+) ?(.*)$/gm)) {
    const family = families.get(name!) ?? {};
    family[field!.toLowerCase() as "help" | "unit" | "type"] = value;
    families.set(name!, family);
  }
  const violations: string[] = [];
  for (const [name, { help, unit, type }] of families) {
    if (type === "counter" && !name.endsWith("_total")) violations.push(`${name}: counter without _total`);
    const base = type === "counter" ? name.replace(/_total$/, "") : name;
    if (unit !== undefined && !BASE_UNITS.has(unit)) violations.push(`${name}: unit ${unit} is not a base unit`);
    else if (unit !== undefined && !base.endsWith(`_${unit}`)) violations.push(`${name}: unit ${unit} missing from the name`);
    const spoken = /\b(second|byte)s?\b/i.exec(help ?? "")?.[1]?.toLowerCase();
    if (unit === undefined && spoken && !base.endsWith(`_${spoken}s`))
      violations.push(`${name}: HELP speaks of ${spoken}s, the name does not`);
  }
  return violations;
}

export async function scrape(t: TestApp): Promise<{ text: string; samples: Sample[] }> {
  const response = await t.request("/metrics", { as: "readonly" });
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  const text = await response.text();
  return { text, samples: parseExposition(text) };
}

/** The promtool binary when installed (Debian package `prometheus`), else undefined. */
export function findPromtool(): string | undefined {
  const found = spawnSync("sh", ["-c", "command -v promtool"], { encoding: "utf8" });
  const path = found.stdout.trim();
  if (found.status === 0 && path) return path;
  console.warn("promtool not installed (Debian package prometheus; .ci/tools installs it): skipping the promtool checks");
  return undefined;
}

export function runPromtool(promtool: string, args: string[], input?: string): { status: number | null; output: string } {
  const run = spawnSync(promtool, args, { encoding: "utf8", input });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}
