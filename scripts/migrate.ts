/**
 * `bun run db:migrate`: applies drizzle/ migrations to the configured database (DATABASE_URL, else
 * the embedded one in DATA_DIR) and exits. Deployments that separate duties run this as the
 * app_admin role and start the API with RUN_MIGRATIONS=false as app_write.
 */
import { ConfigError, loadConfig, redactUrl } from "../src/config";
import { openDatabase } from "../src/deps";

try {
  const config = loadConfig(process.env);
  const database = await openDatabase(config);
  const target = config.DATABASE_URL ? redactUrl(config.DATABASE_URL) : `pglite:${config.DATA_DIR}`;
  try {
    await database.ping();
    const started = performance.now();
    await database.migrate();
    console.log(`migrations applied to ${target} in ${Math.round(performance.now() - started)} ms`);
  } finally {
    await database.close();
  }
} catch (error) {
  const message = error instanceof ConfigError ? error.message : `migration failed: ${(error as Error).message}`;
  console.error(`arbiter: ${message.replace(/\w+:\/\/\S+/g, (url) => redactUrl(url))}`);
  process.exit(1);
}
