/**
 * The status and body of a whole HTTP/1.1 response in `bytes`, or undefined while it is incomplete.
 * `closed`: the connection has ended, which ends a body that has neither a length nor chunks.
 */
export function parseResponse(bytes: Buffer, closed = false): { status: number; body: string } | undefined {
  const headEnd = bytes.indexOf("\r\n\r\n");
  if (headEnd < 0) return undefined;
  const head = bytes.subarray(0, headEnd).toString("latin1");
  const status = Number(head.slice(9, 12));
  const body = bytes.subarray(headEnd + 4);
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (length) return body.length >= Number(length[1]) ? { status, body: body.subarray(0, Number(length[1])).toString() } : undefined;
  if (!/\r\ntransfer-encoding:\s*chunked/i.test(head)) return closed ? { status, body: body.toString() } : undefined;
  const parts: Buffer[] = [];
  for (let at = 0; ; ) {
    const sizeEnd = body.indexOf("\r\n", at);
    if (sizeEnd < 0) return undefined;
    const size = Number.parseInt(body.subarray(at, sizeEnd).toString("latin1"), 16);
    if (size === 0) return { status, body: Buffer.concat(parts).toString() };
    if (body.length < sizeEnd + 2 + size + 2) return undefined;
    parts.push(body.subarray(sizeEnd + 2, sizeEnd + 2 + size));
    at = sizeEnd + 2 + size + 2;
  }
}
