/**
 * Which JavaScript runtime this is, and its memory use, for the build-info and process metrics.
 * The one module outside the entry points that looks at runtime globals; on a platform without a
 * `process` object (fetch-only edges), memory is simply not reported.
 */
declare const Deno: { version: { deno: string } } | undefined;

export interface RuntimeInfo {
  name: "bun" | "deno" | "node" | "edge";
  version: string;
}

export function runtimeInfo(): RuntimeInfo {
  if (typeof Bun !== "undefined") return { name: "bun", version: Bun.version };
  if (typeof Deno !== "undefined") return { name: "deno", version: Deno.version.deno };
  const node = globalThis.process?.versions?.node;
  return node ? { name: "node", version: node } : { name: "edge", version: "unknown" };
}

export interface MemoryUsage {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

export function memoryUsage(): MemoryUsage | undefined {
  return typeof globalThis.process?.memoryUsage === "function" ? globalThis.process.memoryUsage() : undefined;
}
