/**
 * Deno entry point (`bun run start:deno`, configuration in deno.json): Deno.serve, with HTTPS from
 * TLS_CERT_FILE/TLS_KEY_FILE. Deno.serve cannot ask clients for certificates, so TLS_CLIENT_AUTH=require
 * stops the start with a clear error. Startup and shutdown are src/server.ts.
 */
import { StartupError } from "./deps";
import { startServer } from "./server";

/** The part of Deno's API this entry uses; the project type-checks with Bun's types, not Deno's. */
interface DenoNetAddr {
  hostname: string;
  port: number;
}
declare const Deno: {
  version: { deno: string };
  env: { toObject(): Record<string, string>; delete(name: string): void };
  serve(
    options: { port: number; hostname: string; cert?: string; key?: string; onListen(address: DenoNetAddr): void },
    handler: (request: Request, info: { remoteAddr: DenoNetAddr }) => Response | Promise<Response>,
  ): { shutdown(): Promise<void> };
  addSignalListener(signal: "SIGTERM" | "SIGINT", handler: () => void): void;
  exit(code: number): never;
};

await startServer({
  name: `deno ${Deno.version.deno}`,
  env: Deno.env.toObject(),
  unsetEnv: (name) => Deno.env.delete(name),
  async listen(fetch, options) {
    if (options.tls?.requestCert) {
      throw new StartupError("TLS_CLIENT_AUTH=require (mutual TLS) is not supported on Deno; use the Bun or Node entry");
    }
    const tls = options.tls ? { cert: options.tls.cert, key: options.tls.key } : {};
    const { promise: listening, resolve } = Promise.withResolvers<DenoNetAddr>();
    const server = Deno.serve({ port: options.port, hostname: options.hostname, ...tls, onListen: resolve }, (request, info) =>
      fetch(request, { requestIP: () => ({ address: info.remoteAddr.hostname }) }),
    );
    const address = await listening;
    const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
    return {
      url: new URL(`${options.tls ? "https" : "http"}://${host}:${address.port}/`),
      // shutdown() stops accepting and waits for in-flight requests; a forced stop leaves the rest to process exit.
      stop: (force) => (force ? Promise.resolve() : server.shutdown()),
    };
  },
  onSignal: (signal, handler) => Deno.addSignalListener(signal, handler),
  exit: (code) => Deno.exit(code),
});
