import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { configSchema } from "../../src/config";
import { type ArbiterProcess, closedPort, spawnArbiter, tempDir } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * The README's commands cannot rot: every shell command in it is either run here (the dev server,
 * the health check, the SDK example) or is one of the commands `.ci/run` itself runs, and every
 * relative link in the README and in docs/ names a file that exists.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const CI_SCRIPT = readFileSync(join(ROOT, ".ci/run"), "utf8");

interface CodeBlock {
  language: string;
  body: string;
}
const blocks: CodeBlock[] = [...README.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((match) => ({
  language: match[1] ?? "",
  body: match[2] ?? "",
}));
/** Shell lines without their trailing comments. */
const shellCommands = blocks
  .filter((block) => block.language === "sh")
  .flatMap((block) => block.body.split("\n"))
  .map((line) => line.replace(/\s+#.*$/, "").trim())
  .filter((line) => line !== "" && !line.startsWith("#"));

const DEV_COMMAND = "npm install -g bun && bun install && bun run dev";
const HEALTH_COMMAND = "curl -s http://127.0.0.1:8100/health/ready";
/** Commands CI runs as written: the test checks `.ci/run` still does. */
const RUN_BY_CI: Record<string, RegExp[]> = {
  "bun test": [/^\s*(env .*)?bun test$/m],
  "DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379 bun test": [
    /DATABASE_URL="\$\{CI_DATABASE_URL:-postgres:\/\/postgres@127\.0\.0\.1:5432\/test\}"/,
    /REDIS_URL="\$\{CI_REDIS_URL:-redis:\/\/127\.0\.0\.1:6379\}"/,
  ],
};

test("every shell command in the README is exercised by this file or by CI", () => {
  expect(shellCommands.length).toBeGreaterThan(0);
  const unexercised = shellCommands.filter((command) => command !== DEV_COMMAND && command !== HEALTH_COMMAND && !(command in RUN_BY_CI));
  expect(unexercised).toEqual([]);
});

test("the install steps of the quick start are what CI does on a fresh machine", () => {
  expect(CI_SCRIPT).toContain("npm install -g bun");
  expect(CI_SCRIPT).toMatch(/^bun install --frozen-lockfile$/m);
  for (const patterns of Object.values(RUN_BY_CI)) for (const pattern of patterns) expect(CI_SCRIPT).toMatch(pattern);
});

test("every relative link in the README and docs/ names a file that exists", () => {
  const documents = [
    "README.md",
    ...readdirSync(join(ROOT, "docs"))
      .filter((name) => name.endsWith(".md"))
      .map((name) => `docs/${name}`),
  ];
  const broken: string[] = [];
  for (const document of documents) {
    const text = readFileSync(join(ROOT, document), "utf8");
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!target || /^(https?:|mailto:|#)/.test(target)) continue;
      const path = resolve(ROOT, dirname(document), target.split("#")[0] ?? "");
      if (!existsSync(path)) broken.push(`${document} → ${target}`);
    }
  }
  expect(broken).toEqual([]);
});

test("docs/configuration.md documents every variable the server reads", () => {
  const table = readFileSync(join(ROOT, "docs/configuration.md"), "utf8");
  // Related variables share a row written `RATE_LIMIT_ADMIN` / `_OPERATOR`: a suffix in backticks counts.
  const documented = (name: string) =>
    table.includes(`\`${name}\``) ||
    name
      .split("_")
      .map((_, index, parts) => `_${parts.slice(index).join("_")}`)
      .slice(1)
      .some((suffix) => table.includes(`\`${suffix}\``));
  const variables = Object.keys(configSchema.shape);
  expect(variables.length).toBeGreaterThan(30);
  expect(variables.filter((name) => !documented(name))).toEqual([]);
});

describe("the quick start, as a newcomer runs it", () => {
  let arbiter: ArbiterProcess;
  let baseUrl: string;
  let adminKey: string;
  const dataDir = tempDir("readme");

  beforeAll(async () => {
    // `bun run dev` itself, with only the port and data directory moved so it cannot collide.
    const port = await closedPort();
    arbiter = spawnArbiter({ PORT: String(port), DATA_DIR: dataDir }, ["bun", "run", "dev"]);
    const listening = await arbiter.waitForLog("listening");
    baseUrl = String(listening.url).replace(/\/$/, "");
    // The first start prints the admin key once, on standard error, on a line of its own.
    const keyLine = arbiter.stderr.map((line) => line.trim()).find((line) => /^arb_[A-Za-z0-9]+$/.test(line));
    expect(keyLine).toBeDefined();
    adminKey = keyLine as string;
  }, 90_000);
  afterAll(async () => {
    arbiter?.proc.kill("SIGTERM");
    await arbiter?.exited;
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("the health check answers pass", async () => {
    const [program, ...args] = HEALTH_COMMAND.replace("http://127.0.0.1:8100", baseUrl).split(" ");
    const curl = Bun.spawnSync([program as string, ...args], { stdout: "pipe", stderr: "pipe" });
    expect(curl.exitCode).toBe(0);
    expect(JSON.parse(curl.stdout.toString()).status).toBe("pass");
  });

  test("the SDK example runs as printed: an agent asks, an operator approves", async () => {
    const example = blocks.find((block) => block.language === "ts" && block.body.includes('from "arbiter/sdk"'));
    expect(example).toBeDefined();
    // Inside the project, so `arbiter/sdk` resolves through package.json's exports as it does for users.
    const dir = mkdtempSync(join(ROOT, ".readme-example-"));
    try {
      const file = join(dir, "example.ts");
      writeFileSync(file, example?.body ?? "");
      const run = Bun.spawn(["bun", "run", file], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ARBITER_URL: baseUrl, ARBITER_API_KEY: adminKey },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [code, stdout, stderr] = await Promise.all([run.exited, new Response(run.stdout).text(), new Response(run.stderr).text()]);
      expect(stderr).toBe("");
      expect(code).toBe(0);
      expect(stdout.trim()).toBe("approved");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
