import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { type SseMessage, sseMessages } from "../../src/sdk/sse";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/** A body delivered in exactly these chunks. */
const body = (chunks: string[]) =>
  new ReadableStream<Uint8Array<ArrayBuffer>>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk) as Uint8Array<ArrayBuffer>);
      controller.close();
    },
  });
const read = async (chunks: string[]) => {
  const messages: SseMessage[] = [];
  for await (const message of sseMessages(body(chunks))) messages.push(message);
  return messages;
};

describe("Server-Sent Events parsing", () => {
  test("fields, multi-line data, comments, and the resume point without data", async () => {
    expect(await read(['retry: 2000\nid: 41\n\n: keep-alive\n\nid: 42\nevent: created\ndata: {"a":\ndata: 1}\n\n'])).toEqual([
      { retry: 2000, id: "41" },
      { id: "42", event: "created", data: '{"a":\n1}' },
    ]);
  });

  test("lines split anywhere across chunks, CRLF split between two chunks, CR alone", async () => {
    expect(await read(["id: 7\r", "\ndata: x", "yz\r\n\r", "\nid: 8\rdata: w\r\r"])).toEqual([
      { id: "7", data: "xyz" },
      { id: "8", data: "w" },
    ]);
  });

  test("an unfinished message at the end of the stream is not delivered", async () => {
    expect(await read(["id: 1\ndata: a\n\nid: 2\ndata: b\n"])).toEqual([{ id: "1", data: "a" }]);
  });
});
