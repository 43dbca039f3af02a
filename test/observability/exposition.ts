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
