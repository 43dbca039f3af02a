import Redis from "ioredis";

/**
 * A test-side server speaking the Upstash REST protocol, forwarding every command to a real Redis,
 * so the Upstash cache backend is exercised through @upstash/redis end to end:
 * - `POST /` with a JSON array `["SET", "k", "v"]` → `{ "result": … }` or, on a Redis error, 400 `{ "error": … }`;
 * - `POST /pipeline` and `POST /multi-exec` with an array of commands → an array of those objects;
 * - `POST /subscribe/<channel>` → a `text/event-stream` of `data: subscribe,<channel>,1` then
 *   `data: message,<channel>,<message>` lines, ended when the client aborts.
 * Requests need `Authorization: Bearer <token>` (401 otherwise). With `Upstash-Encoding: base64` (the
 * client's default) string results are base64-encoded, as Upstash does.
 */
export interface UpstashBridge {
  url: string;
  token: string;
  /** subscription streams currently open */
  subscriptions(): number;
  /** delays every later command reply by `ms`: a cache that has become slow */
  setLatency(ms: number): void;
  /** commands being held by that delay right now */
  delayed(): number;
  close(): Promise<void>;
}

type Reply = string | number | null | Reply[];

export function startUpstashBridge(options: { redisUrl: string; token?: string }): UpstashBridge {
  const token = options.token ?? `bridge-${crypto.randomUUID()}`;
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 1 });
  const subscribers = new Set<Redis>();
  let latencyMs = 0;
  let delayed = 0;

  const encode = (value: Reply, base64: boolean): Reply => {
    if (Array.isArray(value)) return value.map((v) => encode(v, base64));
    if (typeof value === "string" && base64) return Buffer.from(value).toString("base64");
    return value;
  };
  const execute = async (command: unknown, base64: boolean): Promise<{ result: Reply } | { error: string }> => {
    if (!Array.isArray(command) || command.length === 0) return { error: "ERR malformed command" };
    if (latencyMs > 0) {
      delayed += 1;
      await Bun.sleep(latencyMs);
      delayed -= 1;
    }
    const [name, ...args] = command.map(String) as [string, ...string[]];
    try {
      return { result: encode((await redis.call(name, ...args)) as Reply, base64) };
    } catch (error) {
      return { error: (error as Error).message };
    }
  };

  const subscribe = (channel: string, signal: AbortSignal): Response => {
    const connection = redis.duplicate();
    subscribers.add(connection);
    const end = () => {
      subscribers.delete(connection);
      connection.disconnect();
    };
    const encoder = new TextEncoder();
    const stream = new ReadableStream<Uint8Array>({
      async start(controller) {
        const send = (line: string) => {
          try {
            controller.enqueue(encoder.encode(`data: ${line}\n\n`));
          } catch {
            end(); // the client went away
          }
        };
        connection.on("message", (_channel: string, message: string) => send(`message,${channel},${message}`));
        signal.addEventListener("abort", () => {
          end();
          try {
            controller.close();
          } catch {
            // already closed
          }
        });
        try {
          const count = await connection.subscribe(channel);
          send(`subscribe,${channel},${count}`);
        } catch (error) {
          end();
          controller.error(error);
        }
      },
      cancel: end,
    });
    return new Response(stream, { headers: { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" } });
  };

  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0, // subscriptions stay open as long as the client wants
    async fetch(req) {
      if (req.headers.get("authorization") !== `Bearer ${token}`) return Response.json({ error: "Unauthorized" }, { status: 401 });
      if (req.method !== "POST") return Response.json({ error: "method not allowed" }, { status: 405 });
      const path = new URL(req.url).pathname;
      const base64 = req.headers.get("upstash-encoding") === "base64";
      if (path.startsWith("/subscribe/")) return subscribe(decodeURIComponent(path.slice("/subscribe/".length)), req.signal);
      let body: unknown;
      try {
        body = await req.json();
      } catch {
        return Response.json({ error: "ERR malformed JSON body" }, { status: 400 });
      }
      if (path === "/pipeline" || path === "/multi-exec") {
        if (!Array.isArray(body)) return Response.json({ error: "ERR a pipeline is an array of commands" }, { status: 400 });
        const results = [];
        for (const command of body) results.push(await execute(command, base64));
        return Response.json(results);
      }
      if (path !== "/") return Response.json({ error: "not found" }, { status: 404 });
      const outcome = await execute(body, base64);
      return Response.json(outcome, { status: "error" in outcome ? 400 : 200 });
    },
  });

  return {
    url: server.url.toString().replace(/\/$/, ""),
    token,
    subscriptions: () => subscribers.size,
    delayed: () => delayed,
    setLatency(ms) {
      latencyMs = ms;
    },
    async close() {
      await server.stop(true);
      for (const connection of subscribers) connection.disconnect();
      subscribers.clear();
      redis.disconnect();
    },
  };
}
