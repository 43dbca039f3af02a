/**
 * Node 20+ entry point (`npm run start:node`, TypeScript through tsx): @hono/node-server over
 * node:http, or node:https when TLS_* is set (mutual TLS included). Startup and shutdown are src/server.ts.
 */
import type { Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { type HttpBindings, serve } from "@hono/node-server";
import { HEADER_READ_TIMEOUT_S, startServer } from "./server";

await startServer({
  name: `node ${process.versions.node}`,
  env: process.env,
  unsetEnv: (name) => delete process.env[name],
  listen: (fetch, options) =>
    new Promise((resolve, reject) => {
      // An http.Server, or the https.Server it extends: never HTTP/2 here.
      const server = serve(
        {
          port: options.port,
          hostname: options.hostname,
          fetch: (request, bindings) => {
            const peer = (bindings as HttpBindings).incoming.socket.remoteAddress;
            return fetch(request, { requestIP: () => (peer ? { address: peer } : null) });
          },
          // Timeouts are checked every connectionsCheckingInterval (30 s by default): once a second instead.
          serverOptions: { ...options.tls, maxHeaderSize: options.maxHeaderBytes, connectionsCheckingInterval: 1_000 },
          ...(options.tls ? { createServer: createHttpsServer } : {}),
        },
        (address: AddressInfo) => {
          const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
          resolve({
            url: new URL(`${options.tls ? "https" : "http"}://${host}:${address.port}/`),
            stop: (force) =>
              new Promise<void>((done) => {
                // close() waits for busy connections; a keep-alive connection that turns idle after it
                // would hold the close open, so idle ones are closed again until the server is down.
                const sweep = setInterval(() => server.closeIdleConnections(), 100);
                server.close(() => {
                  clearInterval(sweep);
                  done();
                });
                server.closeIdleConnections();
                if (force) server.closeAllConnections();
              }),
          });
        },
      ) as Server;
      server.keepAliveTimeout = options.idleTimeoutSeconds * 1000;
      // A request head trickling in (slowloris) is cut off with 408 after this long, as on Bun.
      server.headersTimeout = HEADER_READ_TIMEOUT_S * 1000;
      server.once("error", reject);
    }),
  onSignal: (signal, handler) => process.on(signal, handler),
  exit: (code) => process.exit(code),
});
