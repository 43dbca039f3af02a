/**
 * The HTTP load generator: wrk (one thread, a fixed number of keep-alive connections, --latency for
 * the percentiles). A POST body goes through a small Lua script written next to the body file.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export interface WrkTarget {
  url: string;
  headers: Record<string, string>;
  /** a JSON body to POST; GET without one */
  body?: string;
}

export interface WrkResult {
  requests_per_second: number;
  requests: number;
  p50_ms: number;
  p99_ms: number;
  /** responses with status ≥ 400 (wrk's "Non-2xx or 3xx responses") */
  non_2xx: number;
  /** connect, read, write and timeout errors */
  socket_errors: number;
}

/** The wrk binary, or undefined when it is not installed. */
export const wrkPath = () => Bun.which("wrk") ?? undefined;

/** Writes the Lua script that turns wrk's requests into POSTs of `body`; returns the argument list for it. */
export function postScript(dir: string, name: string, body: string): string[] {
  const bodyFile = join(dir, `${name}.json`);
  const scriptFile = join(dir, `${name}.lua`);
  writeFileSync(bodyFile, body);
  writeFileSync(
    scriptFile,
    [
      'wrk.method = "POST"',
      'wrk.headers["Content-Type"] = "application/json"',
      `local file = assert(io.open(${JSON.stringify(bodyFile)}, "rb"))`,
      'wrk.body = file:read("*a")',
      "file:close()",
      "",
    ].join("\n"),
  );
  return ["-s", scriptFile];
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function latencyMs(output: string, percent: string): number {
  const match = new RegExp(`^\\s*${percent}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(output);
  if (!match) throw new Error(`wrk printed no ${percent}% latency:\n${output}`);
  return Number(match[1]) * UNIT_MS[match[2]!]!;
}

export function parseWrk(output: string): WrkResult {
  const rate = /^Requests\/sec:\s+([\d.]+)/m.exec(output);
  const total = /^\s*(\d+) requests in /m.exec(output);
  if (!rate || !total) throw new Error(`unexpected wrk output:\n${output}`);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  return {
    requests_per_second: Number(rate[1]),
    requests: Number(total[1]),
    p50_ms: latencyMs(output, "50"),
    p99_ms: latencyMs(output, "99"),
    non_2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0),
    socket_errors: socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
  };
}

/** One wrk run of `seconds` against the target; `script` is postScript()'s arguments for a POST. */
export async function runWrk(target: WrkTarget, options: { seconds: number; connections: number; script?: string[] }): Promise<WrkResult> {
  const headers = Object.entries(target.headers).flatMap(([name, value]) => ["-H", `${name}: ${value}`]);
  const argv = [
    wrkPath() ?? "wrk",
    "-t1",
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    // Embedded batches queue behind one database connection: a slow answer is a figure, not a failure.
    "--timeout",
    "30s",
    "--latency",
    ...headers,
    ...(options.script ?? []),
    target.url,
  ];
  const child = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new Error(`wrk exited ${code}: ${stderr.trim() || stdout.trim()}`);
  return parseWrk(stdout);
}
