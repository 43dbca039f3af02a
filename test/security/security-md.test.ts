import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * SECURITY.md cannot rot: every test file it names exists, every quoted test name
 * ("describe › test") is still in that file, and each OWASP API Top 10 item has its section.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SECURITY = readFileSync(join(ROOT, "SECURITY.md"), "utf8");

/** `test/….test.ts` › "describe › name": a path and the parts of one test's full name. */
const references = [...SECURITY.matchAll(/`(test\/[^`\s]+\.test\.ts)` › "([^"\n]+)"/g)].map((match) => ({
  path: match[1] ?? "",
  parts: (match[2] ?? "").split(" › "),
}));
/** Every test file path in backticks, with or without a quoted name. */
const paths = [...new Set([...SECURITY.matchAll(/`(test\/[^`\s]+\.test\.ts)`/g)].map((match) => match[1] ?? ""))];

describe("SECURITY.md", () => {
  test("names API1 to API10 of the OWASP API Security Top 10, each with its own section", () => {
    for (let item = 1; item <= 10; item++) expect(SECURITY).toMatch(new RegExp(`^### API${item} \\S`, "m"));
  });

  test("states the threat model, the revocation bound, logging and how to report a vulnerability", () => {
    for (const heading of [
      "## Threat model",
      "## Revocation bound",
      "## What is logged, and what never is",
      "## Reporting a vulnerability",
    ])
      expect(SECURITY).toContain(heading);
  });

  test("every referenced test file exists", () => {
    expect(paths.length).toBeGreaterThan(10);
    expect(paths.filter((path) => !existsSync(join(ROOT, path)))).toEqual([]);
  });

  test("every quoted test name is found in the file it is attributed to", () => {
    expect(references.length).toBeGreaterThan(50);
    const sources = new Map(
      paths.filter((path) => existsSync(join(ROOT, path))).map((path) => [path, readFileSync(join(ROOT, path), "utf8")]),
    );
    const missing = references.flatMap(({ path, parts }) => {
      const source = sources.get(path);
      if (source === undefined) return [`${path}: no such file`];
      return parts.filter((part) => !source.includes(part)).map((part) => `${path}: "${part}"`);
    });
    expect(missing).toEqual([]);
  });

  test("every API section lists at least one covering test", () => {
    const sections = SECURITY.split(/^### /m).filter((text) => /^API\d+ /.test(text));
    expect(sections.length).toBe(10);
    const uncovered = sections.filter((text) => !/`test\/[^`]+\.test\.ts` › "/.test(text)).map((text) => text.split("\n")[0]);
    expect(uncovered).toEqual([]);
  });
});
