import { type ParseArgsConfig, parseArgs } from "node:util";
import { type Config, ConfigError, loadConfig } from "../../src/config";
import { OpsError } from "./process";

/** Parses a script's arguments; a mistake is a usage error (exit 2), like a bad configuration. */
export function parseScriptArgs<T extends ParseArgsConfig["options"]>(options: T) {
  try {
    return parseArgs({ args: Bun.argv.slice(2), allowPositionals: true, strict: true, options });
  } catch (error) {
    throw new OpsError((error as Error).message, 2);
  }
}

/** The same validated configuration the server reads. */
export function scriptConfig(): Config {
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) throw new OpsError(error.message, 2);
    throw error;
  }
}
