import { type Cluster, clusterAt, createWorkspace, initCluster } from "../../scripts/lib/cluster";
import { findServerBinDir } from "../../scripts/lib/pg-bin";

/**
 * A PostgreSQL cluster of a test's own (initdb in a temporary directory, a free port), for tests
 * that break the server: the machine's shared PostgreSQL is never stopped or reconfigured. Undefined
 * when the server binaries are missing; the caller skips with a message saying so.
 */
export interface ThrowawayPostgres {
  cluster: Cluster;
  remove(): Promise<void>;
}

export const postgresServerBinaries = await findServerBinDir();

export async function startThrowawayPostgres(name: string): Promise<ThrowawayPostgres> {
  if (!postgresServerBinaries) throw new Error("no PostgreSQL server binaries");
  const ws = await createWorkspace(postgresServerBinaries);
  // A test cluster: durability across an OS crash is not what these tests are about.
  const cluster = await clusterAt(ws, await initCluster(ws, name), { fsync: "off" });
  await cluster.start();
  return {
    cluster,
    async remove() {
      await cluster.stop("immediate").catch(() => {});
      ws.remove();
    },
  };
}
