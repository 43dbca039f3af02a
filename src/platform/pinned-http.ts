import type { IncomingMessage } from "node:http";

/**
 * One HTTP(S) POST to a host name over a connection to an address the caller already checked.
 *
 * `fetch` resolves the name itself when it connects, so an address checked before the request is
 * not necessarily the one connected to (DNS rebinding). `node:http`/`node:https` take a `lookup`
 * function instead (Bun, Deno and Node all honour it): it answers with the checked address, so no
 * second resolution happens, while the URL's name still goes into the `Host` header and, for
 * https, into SNI and the certificate's name check. The modules are imported on first use, as in
 * src/platform/dns.ts, so a fetch-only platform can still load this file.
 */
export interface PinnedPost {
  url: URL;
  /** the checked IP address the connection goes to */
  address: string;
  headers: Record<string, string>;
  body: string;
  /** the whole exchange, response body included, ends by then */
  timeoutMs: number;
  /** response body bytes read at most; the connection is closed past them */
  maxResponseBytes: number;
  /** extra trusted certificate authorities (PEM), beside the platform's */
  ca?: string;
}

export interface PinnedResponse {
  status: number;
  /** the response body was cut off at maxResponseBytes, or by the deadline */
  truncated: boolean;
}

type LookupCallback = (error: Error | null, address: string | { address: string; family: number }[], family?: number) => void;

export async function postToAddress(request: PinnedPost): Promise<PinnedResponse> {
  const https = request.url.protocol === "https:";
  const { request: send } = https ? await import("node:https") : await import("node:http");
  const family = request.address.includes(":") ? 6 : 4;
  const lookup = (_host: string, options: { all?: boolean }, callback: LookupCallback) => {
    if (options?.all) callback(null, [{ address: request.address, family }]);
    else callback(null, request.address, family);
  };
  const body = new TextEncoder().encode(request.body);

  return new Promise<PinnedResponse>((resolve, reject) => {
    let status: number | undefined;
    let received = 0;
    // Once the status is known the exchange has its answer: the body only decides when to close.
    const finish = (answered: number, truncated: boolean) => {
      clearTimeout(deadline);
      outgoing.destroy();
      resolve({ status: answered, truncated });
    };
    const outgoing = send(
      request.url,
      {
        method: "POST",
        headers: { ...request.headers, "Content-Length": String(body.length) },
        lookup,
        // A fresh connection per request: a pooled socket may have been opened to an older answer.
        agent: false,
        ...(https && request.ca ? { ca: request.ca } : {}),
      },
      (response: IncomingMessage) => {
        // Redirects are never followed: node:http does not, and a 3xx is just a status here.
        const answered = response.statusCode ?? 0;
        status = answered;
        response.on("data", (chunk: Uint8Array) => {
          received += chunk.length;
          if (received > request.maxResponseBytes) finish(answered, true);
        });
        response.on("end", () => finish(answered, false));
        response.on("error", () => finish(answered, true));
      },
    );
    const deadline = setTimeout(() => {
      if (status !== undefined) finish(status, true);
      else {
        outgoing.destroy();
        reject(new Error(`no response within ${request.timeoutMs} ms`));
      }
    }, request.timeoutMs);
    outgoing.on("error", (error) => {
      clearTimeout(deadline);
      if (status === undefined) reject(error);
      else resolve({ status, truncated: true });
    });
    outgoing.end(body);
  });
}
