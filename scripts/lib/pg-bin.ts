import { existsSync, readdirSync } from "node:fs";
import { delimiter, join } from "node:path";
import { OpsError, run } from "./process";

/**
 * Finds PostgreSQL programs. pg_dump and pg_restore must be at least as new as the server they
 * talk to, and a machine often has several versions installed, so every candidate directory is asked
 * for its version instead of trusting PATH: PG_BIN_DIR when set, then `pg_config --bindir`, then the
 * usual Debian/RHEL/Homebrew locations (newest first), then PATH.
 */
async function candidateDirs(preferred?: string): Promise<string[]> {
  if (preferred) return [preferred];
  const dirs: string[] = [];
  try {
    dirs.push((await run("pg_config", ["--bindir"])).stdout.trim());
  } catch {
    // pg_config is optional; the fixed locations below still apply.
  }
  for (const root of ["/usr/lib/postgresql", "/usr/pgsql", "/opt/homebrew/opt", "/usr/local/opt"]) {
    if (!existsSync(root)) continue;
    const versions = readdirSync(root)
      .filter((name) => /^(postgresql@)?\d+$/.test(name))
      .sort((a, b) => Number(b.replace(/\D/g, "")) - Number(a.replace(/\D/g, "")));
    for (const version of versions) dirs.push(join(root, version, "bin"));
  }
  dirs.push(...(process.env.PATH ?? "").split(delimiter).filter(Boolean));
  return [...new Set(dirs)];
}

export interface PgProgram {
  path: string;
  major: number;
  /** the whole `--version` line, recorded in backup manifests */
  version: string;
}

async function probe(path: string): Promise<PgProgram | undefined> {
  if (!existsSync(path)) return undefined;
  try {
    const version = (await run(path, ["--version"])).stdout.trim();
    const major = majorOfVersionLine(version);
    return major === undefined ? undefined : { path, major, version };
  } catch {
    return undefined;
  }
}

/** The newest `program` whose major version is at least `minMajor`. */
export async function findPgProgram(program: string, minMajor: number, preferredDir?: string): Promise<PgProgram> {
  const found: PgProgram[] = [];
  for (const dir of await candidateDirs(preferredDir)) {
    const candidate = await probe(join(dir, program));
    if (candidate) found.push(candidate);
  }
  const usable = found.filter((p) => p.major >= minMajor).sort((a, b) => b.major - a.major);
  if (usable[0]) return usable[0];
  const seen = found.length ? found.map((p) => `${p.path} (${p.major})`).join(", ") : "none";
  throw new OpsError(
    `no ${program} of PostgreSQL ${minMajor} or newer found (seen: ${seen}); install the matching client tools or set PG_BIN_DIR`,
  );
}

/** The directory holding the server binaries (initdb, pg_ctl, postgres), or undefined when none is installed. */
export async function findServerBinDir(preferredDir?: string): Promise<string | undefined> {
  for (const dir of await candidateDirs(preferredDir)) {
    if (["initdb", "pg_ctl", "postgres", "pg_basebackup"].every((p) => existsSync(join(dir, p)))) return dir;
  }
  return undefined;
}

/** Major version from a `--version` line ("pg_dump (PostgreSQL) 15.4 (Debian …)" → 15), or undefined. */
export function majorOfVersionLine(line: string): number | undefined {
  const major = /\(PostgreSQL\)\s+(\d+)/.exec(line)?.[1];
  return major === undefined ? undefined : Number(major);
}

/** Major version from `server_version_num` (150020 → 15). */
export const majorOf = (serverVersionNum: number) => Math.floor(serverVersionNum / 10000);
