import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { OpsError, run } from "./process";

/**
 * Throwaway PostgreSQL clusters made with the server binaries, for recovery drills. The server
 * refuses to run as root, so when this process is root every server program runs as the `postgres`
 * OS user, in a work directory that user owns.
 */
export interface Workspace {
  root: string;
  /** the OS user server programs run as, or undefined to run them as ourselves */
  user: string | undefined;
  bin: string;
  dir(name: string): string;
  /** runs a server program (by name, from `bin`) or any absolute path, as the server's OS user */
  exec(program: string, args: string[]): Promise<string>;
  writeFile(path: string, text: string): void;
  remove(): void;
}

async function osUser(name: string): Promise<{ uid: number; gid: number } | undefined> {
  try {
    const uid = Number((await run("id", ["-u", name])).stdout.trim());
    const gid = Number((await run("id", ["-g", name])).stdout.trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

export async function createWorkspace(bin: string): Promise<Workspace> {
  const root = mkdtempSync(join(tmpdir(), "arbiter-drill-"));
  const isRoot = process.getuid?.() === 0;
  const owner = isRoot ? await osUser("postgres") : undefined;
  if (isRoot && !owner) {
    rmSync(root, { recursive: true, force: true });
    throw new OpsError("running as root needs a `postgres` OS user to run the server binaries as");
  }
  const own = (path: string) => {
    if (owner) chownSync(path, owner.uid, owner.gid);
  };
  own(root);
  return {
    root,
    user: owner ? "postgres" : undefined,
    bin,
    dir(name) {
      const path = join(root, name);
      mkdirSync(path, { recursive: true, mode: 0o700 });
      own(path);
      return path;
    },
    async exec(program, args) {
      return (await run(isAbsolute(program) ? program : join(bin, program), args, { asUser: owner ? "postgres" : undefined, cwd: root }))
        .stdout;
    },
    writeFile(path, text) {
      writeFileSync(path, text, { mode: 0o600 });
      own(path);
    },
    remove() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export async function freePort(): Promise<number> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = listener;
  listener.stop(true);
  return port;
}

export interface Cluster {
  dataDir: string;
  port: number;
  url: string;
  start(): Promise<void>;
  /** `immediate` is a crash: no checkpoint, no final WAL archiving */
  stop(mode?: "fast" | "immediate"): Promise<void>;
}

/** A cluster over `dataDir` (already initialised or restored); `settings` go to postgresql.auto.conf. */
export async function clusterAt(ws: Workspace, dataDir: string, settings: Record<string, string | number>): Promise<Cluster> {
  const port = await freePort();
  const all: Record<string, string | number> = {
    port,
    listen_addresses: "127.0.0.1",
    unix_socket_directories: ws.root,
    ...settings,
  };
  const quote = (v: string | number) => (typeof v === "number" ? String(v) : `'${v.replaceAll("'", "''")}'`);
  ws.writeFile(
    join(dataDir, "postgresql.auto.conf"),
    `${Object.entries(all)
      .map(([k, v]) => `${k} = ${quote(v)}`)
      .join("\n")}\n`,
  );
  let running = false;
  return {
    dataDir,
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async start() {
      await ws.exec("pg_ctl", ["-D", dataDir, "-l", join(ws.root, `server-${port}.log`), "-w", "-t", "120", "start"]);
      running = true;
    },
    async stop(mode = "fast") {
      if (!running) return;
      running = false;
      await ws.exec("pg_ctl", ["-D", dataDir, "-m", mode, "-w", "stop"]);
    },
  };
}

export async function initCluster(ws: Workspace, name: string): Promise<string> {
  const dataDir = join(ws.root, name);
  await ws.exec("initdb", ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"]);
  return dataDir;
}
