import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { join, relative } from "node:path";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * The app core runs unchanged on Bun, Deno, Node and fetch-only edges, so runtime-specific code is
 * kept to the entry points and the adapters listed here. Every other file under src/ may not use
 * `Bun.*`, `Deno.*` or `process`, nor import `bun:*`, `node:*` or a bare Node built-in (`fs`, …).
 */
const RUNTIME_SPECIFIC: Record<string, string> = {
  "src/main.ts": "Bun entry point",
  "src/deno.ts": "Deno entry point",
  "src/node.ts": "Node entry point",
  "src/tls.ts": "reads the certificate files for the entry points (node:fs exists on Bun, Deno and Node)",
  "src/db/client.ts": "database backend adapter: PGlite's data directory and the migrations folder on disk",
  "src/platform/dns.ts": "host name resolution for the webhook SSRF guard; the Web platform has no DNS API",
  "src/platform/pinned-http.ts": "webhook requests to a checked address (node:http lookup); fetch cannot pin the address it connects to",
  "src/platform/runtime.ts": "runtime name, version and memory for the process metrics",
  "src/platform/sha256.ts": "Bun's native synchronous SHA-256 for the key hash on every request; pure JS elsewhere",
  "src/cli/main.ts":
    "the arbiter CLI's entry: argv, environment, stdio, exit code and reading files (commands live in runtime-neutral modules)",
};

const SRC = join(import.meta.dir, "../../src");
const NODE_BUILTINS = new Set(builtinModules.filter((name) => !name.startsWith("_")));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(?:ts|tsx|js|mjs)$/.test(entry.name) ? [path] : [];
  });
}

/** Comments may name runtimes freely; only code counts. */
const stripComments = (code: string) =>
  code.replace(/\/\*[\s\S]*?\*\//g, (comment) => comment.replace(/[^\n]/g, "")).replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");

/** Each runtime-specific use in a source text, as `line: what`. */
export function runtimeSpecificUses(code: string): string[] {
  const found: string[] = [];
  stripComments(code)
    .split("\n")
    .forEach((line, index) => {
      const at = (what: string) => found.push(`${index + 1}: ${what}`);
      if (/\bBun\s*\.\s*\w/.test(line)) at("Bun.* global");
      if (/\bDeno\s*\.\s*\w/.test(line)) at("Deno.* global");
      if (/(?<![.\w"'`])process\s*\.\s*\w/.test(line)) at("process global");
      if (/(?<![.\w"'`])Buffer\s*[.(]/.test(line)) at("Buffer global");
      const specifiers = line.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)["']([^"']+)["']/g);
      for (const [, specifier = ""] of specifiers) {
        if (specifier === "bun" || specifier.startsWith("bun:")) at(`import "${specifier}"`);
        else if (specifier.startsWith("node:")) at(`import "${specifier}"`);
        else if (NODE_BUILTINS.has(specifier.split("/")[0]!)) at(`import "${specifier}" (a Node built-in)`);
      }
    });
  return found;
}

describe("runtime-neutral core", () => {
  test("the scanner flags each kind of runtime-specific code and ignores comments", () => {
    const sample = [
      'import { readFileSync } from "node:fs";',
      'import { createHash } from "crypto";',
      'import { Database } from "bun:sqlite";',
      'const dns = await import("node:dns/promises");',
      "const server = Bun.serve({ fetch });",
      "Deno.exit(0);",
      "const port = process.env.PORT;",
      '// Bun.serve and "node:fs" in a comment',
      "/* process.exit(1) */",
      'import { z } from "zod";',
      "const processed = input.process.length;",
      'meter.createGauge("process.uptime");',
      "const n = Buffer.byteLength(text);",
      "const bytes = await c.req.arrayBuffer();",
    ].join("\n");
    expect(runtimeSpecificUses(sample)).toEqual([
      '1: import "node:fs"',
      '2: import "crypto" (a Node built-in)',
      '3: import "bun:sqlite"',
      '4: import "node:dns/promises"',
      "5: Bun.* global",
      "6: Deno.* global",
      "7: process global",
      "13: Buffer global",
    ]);
  });

  test("no file outside the entry points and adapters uses Bun, Deno or Node APIs", () => {
    const files = sourceFiles(SRC);
    // The scan covers the routers, services, auth and (once it exists) the SDK.
    expect(files.some((path) => path.endsWith("auth/verifier.ts"))).toBe(true);
    expect(files.some((path) => path.endsWith("decisions/routes.ts"))).toBe(true);
    const violations = files
      .map((path) => relative(join(SRC, ".."), path).replaceAll("\\", "/"))
      .filter((path) => !(path in RUNTIME_SPECIFIC))
      .flatMap((path) => runtimeSpecificUses(readFileSync(join(SRC, "..", path), "utf8")).map((use) => `${path}:${use}`));
    expect(violations).toEqual([]);
  });

  test("every allow-listed file exists, so the list cannot quietly outgrow the code", () => {
    const files = new Set(sourceFiles(SRC).map((path) => relative(join(SRC, ".."), path).replaceAll("\\", "/")));
    expect(Object.keys(RUNTIME_SPECIFIC).filter((path) => !files.has(path))).toEqual([]);
  });

  test("the edge entry is itself runtime-neutral: it exports { fetch } and uses no runtime API", () => {
    expect(runtimeSpecificUses(readFileSync(join(SRC, "edge.ts"), "utf8"))).toEqual([]);
  });
});
