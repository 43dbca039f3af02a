import { expect, test } from "bun:test";
import { parseResponse } from "../../bench/lib/http-response";

const bytes = (text: string) => Buffer.from(text, "latin1");

test("a response with a length is whole once its body has arrived", () => {
  const head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n";
  expect(parseResponse(bytes(head))).toBeUndefined();
  expect(parseResponse(bytes(`${head}{"status"`))).toBeUndefined();
  // Bytes past the length (a pipelined next answer) are not part of the body.
  expect(parseResponse(bytes(`${head}{"status":"ok"}HTTP`))).toEqual({ status: 200, body: '{"status":"ok"}' });
  expect(parseResponse(bytes("HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}"))).toEqual({ status: 404, body: "{}" });
});

test("a chunked response is whole at its last chunk, and its body is the chunks joined", () => {
  const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  expect(parseResponse(bytes(`${head}5\r\n{"a":\r\n`))).toBeUndefined();
  expect(parseResponse(bytes(`${head}5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n`))).toEqual({ status: 200, body: '{"a":1}' });
});

test("a response with neither is whole only when the connection closes; a cut head never is", () => {
  const text = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello";
  expect(parseResponse(bytes(text))).toBeUndefined();
  expect(parseResponse(bytes(text), true)).toEqual({ status: 200, body: "hello" });
  expect(parseResponse(bytes("HTTP/1.1 200 OK\r\nContent-Le"), true)).toBeUndefined();
});
