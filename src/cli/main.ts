#!/usr/bin/env bun
import { UsageError } from "./args";
import { EXIT_API_ERROR, runCli } from "./run";

/** The `arbiter` command: the process around the runtime-neutral runCli (arguments, environment, streams, files). */
async function readText(path: string): Promise<string> {
  try {
    return await (path === "-" ? Bun.stdin.text() : Bun.file(path).text());
  } catch {
    throw new UsageError(`cannot read ${path}`);
  }
}

try {
  process.exitCode = await runCli(process.argv.slice(2), {
    env: process.env,
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    readText,
  });
} catch (error) {
  process.stderr.write(`arbiter: unexpected error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = EXIT_API_ERROR;
}
