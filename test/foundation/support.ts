import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A local TCP port with nothing listening on it: connections to it are refused at once. */
export async function closedPort(): Promise<number> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = listener;
  listener.stop(true);
  return port;
}

/** A TCP server that accepts connections and never answers: the worst kind of dependency. */
export function silentServer(): { port: number; stop(): void } {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  return { port: listener.port, stop: () => listener.stop(true) };
}

/** Polls `condition` until it holds; fails with `message` after `timeoutMs` (a bound against hangs, not a timing assertion). */
export async function waitFor(condition: () => boolean | Promise<boolean>, message: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${message}`);
    await Bun.sleep(10);
  }
}

/** Settles `promise`, or rejects after `timeoutMs` naming what hung. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, hang]);
  } finally {
    clearTimeout(timer);
  }
}

export const tempDir = (label: string) => mkdtempSync(join(tmpdir(), `arbiter-${label}-`));

/** The real servers every tier can reach (they always run beside the test suite). */
export const REAL_REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
export const REAL_POSTGRES_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
