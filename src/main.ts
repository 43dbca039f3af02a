/**
 * Bun entry point (the default runtime): Bun.serve, with HTTPS and mutual TLS from the TLS_* settings.
 * Everything else, from config to graceful shutdown, is src/server.ts and shared with Deno and Node.
 */
import http from "node:http";
import { startServer } from "./server";

await startServer({
  name: "bun",
  env: process.env,
  unsetEnv: (name) => delete process.env[name],
  async listen(fetch, options) {
    // Bun.serve has no per-server option for it: its request-head limit is node:http's
    // maxHeaderSize, process-wide (the API and metrics listeners get the same value).
    (http as { maxHeaderSize: number }).maxHeaderSize = options.maxHeaderBytes;
    const server = Bun.serve({
      port: options.port,
      hostname: options.hostname,
      tls: options.tls,
      idleTimeout: options.idleTimeoutSeconds,
      // Bun's server is the connection info: it has requestIP(request) and timeout(request, seconds).
      fetch: (request, server) => fetch(request, server),
    });
    return { url: server.url, stop: (force) => server.stop(force) };
  },
  onSignal: (signal, handler) => process.on(signal, handler),
  exit: (code) => process.exit(code),
});
