/**
 * Helpers every operations script shares: running external tools with clear failures, and turning
 * an OpsError into one line on stderr and a non-zero exit code.
 */
export class OpsError extends Error {
  override name = "OpsError";
  constructor(
    message: string,
    /** the process exit code the script ends with */
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** run as this OS user (through runuser), for server binaries that refuse root */
  asUser?: string;
  /** bytes for standard input */
  stdin?: string;
}

/** Runs a command to completion; a non-zero exit becomes an OpsError carrying its stderr. */
export async function run(command: string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
  const argv = options.asUser ? ["runuser", "-u", options.asUser, "--", command, ...args] : [command, ...args];
  let child: Bun.Subprocess<"pipe", "pipe", "pipe">;
  try {
    child = Bun.spawn(argv, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
  } catch (error) {
    throw new OpsError(`cannot run ${command}: ${(error as Error).message}`);
  }
  if (options.stdin !== undefined) child.stdin.write(options.stdin);
  await child.stdin.end();
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) {
    const detail = stderr.trim().split("\n").slice(-5).join(" | ") || `exit code ${code}`;
    throw new OpsError(`${command.split("/").pop()} failed: ${detail}`);
  }
  return { stdout, stderr };
}

/** The body of a script's main: prints an OpsError as one line and exits with its code. */
export async function runScript(name: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
    process.exit(0);
  } catch (error) {
    if (error instanceof OpsError) {
      console.error(`${name}: ${error.message}`);
      process.exit(error.exitCode);
    }
    console.error(`${name}: unexpected failure: ${(error as Error).message ?? String(error)}`);
    process.exit(1);
  }
}
