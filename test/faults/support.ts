import { rmSync } from "node:fs";
import { type ArbiterProcess, closedPort, spawnArbiter, tempDir } from "../foundation/support";
import { createScratchDatabase } from "../helpers/db";

/**
 * Arbiter as a process that tests stop and start again on the same database: the tier's (a scratch
 * database on the real server, or an embedded PGlite directory kept across restarts).
 */
export interface RestartableArbiter {
  /** the environment every start gets: the database and `extraEnv` */
  env: Record<string, string>;
  /** a new process on a free port, once it logged `listening` */
  start(): Promise<{ arbiter: ArbiterProcess; url: string }>;
  /** drops the scratch database or removes the data directory */
  remove(): Promise<void>;
}

export async function restartableArbiter(label: string, extraEnv: Record<string, string>): Promise<RestartableArbiter> {
  const dataDir = tempDir(label);
  const scratch = process.env.DATABASE_URL ? await createScratchDatabase(process.env.DATABASE_URL) : undefined;
  const env = { ...(scratch ? { DATABASE_URL: scratch.url } : { DATA_DIR: dataDir }), ...extraEnv };
  return {
    env,
    async start() {
      const arbiter = spawnArbiter({ ...env, PORT: String(await closedPort()) });
      const listening = await arbiter.waitForLog("listening", 90_000);
      return { arbiter, url: String(listening.url).replace(/\/$/, "") };
    },
    async remove() {
      await scratch?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
