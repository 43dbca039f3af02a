import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse } from "yaml";
import { configSchema } from "../../src/config";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * Offline checks of the deployment files. No container engine runs here: Debian's docker-compose (v1)
 * parses, interpolates and validates ops/compose.yaml against its schema without a daemon; images
 * are neither pulled nor built, and nothing is started.
 */
const root = resolve(import.meta.dir, "../..");
const ops = join(root, "ops");
const compose = Bun.which("docker-compose");
if (!compose) console.warn("compose.test: docker-compose not installed (apt-get install docker-compose); compose validation skipped");

// docker-compose is a Python program: a few seconds per call on a busy machine.
const SLOW = 60_000;
const work = mkdtempSync(join(tmpdir(), "arbiter-compose-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const REQUIRED_SECRETS = [
  "POSTGRES_PASSWORD",
  "ARBITER_DB_PASSWORD",
  "ARBITER_MIGRATOR_PASSWORD",
  "REDIS_PASSWORD",
  "GRAFANA_ADMIN_PASSWORD",
];
const example = readFileSync(join(root, ".env.example"), "utf8");

/** .env.example with every required secret filled in, as an operator's .env would be. */
function filledEnvFile(): string {
  const filled = example.replace(/^([A-Z_]+)=$/gm, (line, name: string) =>
    REQUIRED_SECRETS.includes(name) ? `${name}=secret-${name.toLowerCase()}` : line,
  );
  const path = join(work, "filled.env");
  writeFileSync(path, filled);
  return path;
}

async function dockerCompose(envFile: string, ...args: string[]) {
  const child = Bun.spawn([compose as string, "--env-file", envFile, "-f", join(ops, "compose.yaml"), ...args], {
    env: { PATH: process.env.PATH ?? "", ARBITER_ENV_FILE: envFile },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { stdout, stderr, code };
}

describe.skipIf(!compose)("ops/compose.yaml (docker-compose config, offline)", () => {
  type Service = {
    command?: string[];
    environment?: Record<string, string>;
    healthcheck?: { test?: string[] };
    /** `source:target[:mode]`, as docker-compose v1 prints them */
    volumes?: string[];
  };
  const mounts = (service?: Service) =>
    (service?.volumes ?? []).map((spec) => {
      const [source = "", target = ""] = spec.split(":");
      return { source, target, bind: source.startsWith("/") };
    });
  let services: Record<string, Service>;

  test("validates with every secret set in the env file", async () => {
    const result = await dockerCompose(filledEnvFile(), "config", "-q");
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const full = await dockerCompose(filledEnvFile(), "config");
    services = parse(full.stdout).services;
    expect(Object.keys(services).sort()).toEqual(
      [
        "arbiter",
        "backup",
        "grafana",
        "migrate",
        "node-exporter",
        "postgres",
        "postgres-exporter",
        "prometheus",
        "redis",
        "redis-exporter",
      ].sort(),
    );
  });

  test(
    "refuses to render while a required secret is missing",
    async () => {
      const bare = join(work, "bare.env");
      writeFileSync(bare, example);
      const result = await dockerCompose(bare, "config", "-q");
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/PASSWORD/);
    },
    SLOW,
  );

  test("every long-running service has a healthcheck; only the one-shot migration has none", () => {
    for (const [name, service] of Object.entries(services)) {
      // docker-compose v1 renders `disable: true` as test: [NONE]
      if (name === "migrate") expect(service.healthcheck?.test).toEqual(["NONE"]);
      else expect(service.healthcheck?.test?.length, name).toBeGreaterThan(1);
    }
  });

  test("PostgreSQL archives WAL into a volume; Redis persists with AOF", () => {
    const command = services.postgres?.command?.join(" ") ?? "";
    expect(command).toContain("wal_level=replica");
    expect(command).toContain("archive_mode=on");
    expect(command).toMatch(/archive_command=test ! -f \/wal-archive\/%f && cp %p \/wal-archive\/%f/);
    expect(mounts(services.postgres).some((v) => !v.bind && v.target === "/wal-archive")).toBe(true);
    expect(services.redis?.command?.join(" ")).toContain("--appendonly yes");
  });

  test("Arbiter serves mutual TLS from mounted certificates, as app_write, without the other services' secrets", () => {
    const env = services.arbiter?.environment ?? {};
    expect(env.TLS_CERT_FILE).toBe("/certs/server-cert.pem");
    expect(env.TLS_CLIENT_AUTH).toBe("require");
    expect(env.RUN_MIGRATIONS).toBe("false");
    expect(new URL(env.DATABASE_URL ?? "").username).toBe("arbiter_app");
    expect(new URL(services.migrate?.environment?.DATABASE_URL ?? "").username).toBe("arbiter_migrator");
    expect(mounts(services.arbiter).some((v) => v.target === "/certs" && v.source === join(root, "certs"))).toBe(true);
    for (const secret of REQUIRED_SECRETS) expect(env[secret] ?? "", secret).toBe("");
  });

  test("every file the services mount exists in the repository", () => {
    for (const service of Object.values(services)) {
      for (const volume of mounts(service)) {
        if (volume.bind && volume.source.startsWith(root)) expect(existsSync(volume.source), volume.source).toBe(true);
      }
    }
  });
});

describe("deployment files", () => {
  test(".env.example names every configuration variable", () => {
    const listed = new Set([...example.matchAll(/^([A-Z0-9_]+)=/gm)].map((m) => m[1]));
    const missing = Object.keys(configSchema.shape).filter((name) => !listed.has(name));
    expect(missing).toEqual([]);
    for (const secret of REQUIRED_SECRETS) expect(example).toContain(`\n${secret}=\n`);
  });

  test("the Dockerfile builds on oven/bun with production dependencies and runs as a non-root user with a health check", () => {
    const dockerfile = readFileSync(join(ops, "Dockerfile"), "utf8");
    expect(dockerfile).toMatch(/^FROM oven\/bun:\S+ AS deps$/m);
    expect(dockerfile).toContain("bun install --frozen-lockfile --production");
    const user = /^USER (\S+)$/m.exec(dockerfile)?.[1] ?? "root";
    expect(user.startsWith("root") || user.startsWith("0")).toBe(false);
    expect(dockerfile).toMatch(/^HEALTHCHECK .*ops\/healthcheck\.ts/m);
    expect(readFileSync(join(ops, "healthcheck.ts"), "utf8")).toContain("/health/live");
  });

  test("the postgres init script is valid bash", async () => {
    const child = Bun.spawn(["bash", "-n", join(ops, "postgres", "init.sh")], { stderr: "pipe" });
    expect(await child.exited).toBe(0);
  });
});
