import { ArbiterClient } from "../sdk/client";
import { ArbiterError } from "../sdk/errors";
import { ReceiptError } from "../sdk/receipts";
import { parseArgs, stringFlag, UsageError } from "./args";
import { COMMANDS, type CommandContext } from "./commands";

/** exit codes: 0 done, 1 the API (or the network) refused or a receipt did not verify, 2 the command line was wrong */
export const EXIT_OK = 0;
export const EXIT_API_ERROR = 1;
export const EXIT_USAGE = 2;

export interface CliIo {
  env: Record<string, string | undefined>;
  stdout(text: string): void;
  stderr(text: string): void;
  readText(path: string): Promise<string>;
}

const GLOBAL_FLAGS = { url: "string", key: "string", json: "boolean", help: "boolean" } as const;

export function usage(): string {
  const lines = Object.values(COMMANDS).map((command) => `  arbiter ${command.usage}\n      ${command.summary}`);
  return [
    "usage: arbiter <area> <command> [options]",
    "",
    ...lines,
    "",
    "options: --url URL (or ARBITER_URL), --key KEY (or ARBITER_API_KEY), --json (machine-readable output), --help",
    "exit codes: 0 ok, 1 API error or receipt refused, 2 usage error",
  ].join("\n");
}

/**
 * Runs one command line (without the program name) and returns the exit code. Runtime-neutral: the
 * entry point supplies the environment, the output streams and file reading.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const name = argv.slice(0, 2).join(" ");
  if (argv.length === 0 || argv[0] === "help" || argv[0] === "--help") {
    io.stdout(`${usage()}\n`);
    return EXIT_OK;
  }
  const command = COMMANDS[name];
  try {
    if (!command) throw new UsageError(`unknown command "${name}"`);
    const args = parseArgs(argv.slice(2), { ...GLOBAL_FLAGS, ...command.flags });
    if (args.flags.has("help")) {
      io.stdout(`usage: arbiter ${command.usage}\n`);
      return EXIT_OK;
    }
    const baseUrl = () => {
      const url = stringFlag(args, "url") ?? io.env.ARBITER_URL;
      if (!url) throw new UsageError("no API address: set ARBITER_URL or pass --url");
      return url;
    };
    // Built on first use: a command that works offline (receipts verify --jwks) needs no address or key.
    let client: ArbiterClient | undefined;
    const context: CommandContext = {
      args,
      readText: io.readText,
      baseUrl,
      get client() {
        if (client) return client;
        const url = baseUrl();
        const apiKey = stringFlag(args, "key") ?? io.env.ARBITER_API_KEY;
        if (!apiKey) throw new UsageError("no API key: set ARBITER_API_KEY or pass --key");
        return (client = new ArbiterClient({ baseUrl: url, apiKey, userAgent: "arbiter-cli" }));
      },
    };
    const output = await command.run(context);
    io.stdout(`${args.flags.has("json") ? JSON.stringify(output.json, null, 2) : output.text}\n`);
    return EXIT_OK;
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`arbiter: ${error.message}\n${command ? `usage: arbiter ${command.usage}` : "run `arbiter help` for the commands"}\n`);
      return EXIT_USAGE;
    }
    if (error instanceof ReceiptError) {
      io.stderr(`arbiter: receipt refused: ${error.code}: ${error.message}\n`);
      return EXIT_API_ERROR;
    }
    if (error instanceof ArbiterError) {
      const where = error.status ? `HTTP ${error.status}` : "no answer";
      const request = error.requestId ? `, request ${error.requestId}` : "";
      const details = error.details === undefined ? "" : `\ndetails: ${JSON.stringify(error.details)}`;
      io.stderr(`arbiter: ${error.code}: ${error.message} (${where}${request})${details}\n`);
      return EXIT_API_ERROR;
    }
    throw error;
  }
}
