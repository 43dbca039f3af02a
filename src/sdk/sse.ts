/** One Server-Sent Events message: its fields as received (`data` lines joined by newlines). */
export interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
  retry?: number;
}

/**
 * The messages of an event stream, as the HTML standard's parser reads them: lines end in LF, CR or
 * CRLF; a blank line ends a message; `:` lines are comments (heartbeats). Ends with the stream.
 */
export async function* sseMessages(body: ReadableStream<Uint8Array<ArrayBuffer>>): AsyncGenerator<SseMessage> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let message: SseMessage = {};
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // A trailing CR may be the first half of a CRLF: it waits for the next chunk.
      const carry = buffer.endsWith("\r") ? "\r" : "";
      const lines = (carry ? buffer.slice(0, -1) : buffer).split(/\r\n|\r|\n/);
      // The last piece is a line still arriving.
      buffer = (lines.pop() ?? "") + carry;
      for (const line of lines) {
        if (line === "") {
          if (message.data !== undefined || message.id !== undefined || message.retry !== undefined) yield message;
          message = {};
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        const raw = colon === -1 ? "" : line.slice(colon + 1);
        const text = raw.startsWith(" ") ? raw.slice(1) : raw;
        if (field === "data") message.data = message.data === undefined ? text : `${message.data}\n${text}`;
        else if (field === "id" && !text.includes("\0")) message.id = text;
        else if (field === "event") message.event = text;
        else if (field === "retry" && /^\d+$/.test(text)) message.retry = Number(text);
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}
