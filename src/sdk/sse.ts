/** One Server-Sent Events message: its fields as received (`data` lines joined by newlines). */
export interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
  retry?: number;
}

/**
 * The messages of an event stream, as the HTML standard's parser reads them: lines end in LF, CR or
 * CRLF; a blank line ends a message; `:` lines are comments (heartbeats). A message the stream ends
 * in the middle of is not delivered.
 */
export async function* sseMessages(body: ReadableStream<Uint8Array<ArrayBuffer>>): AsyncGenerator<SseMessage> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let message: SseMessage = {};
  /** Reads one complete line; answers the message it ends, if it is a blank line ending one. */
  const line = (text: string): SseMessage | undefined => {
    if (text === "") {
      const ended = message;
      message = {};
      return ended.data !== undefined || ended.id !== undefined || ended.retry !== undefined ? ended : undefined;
    }
    if (text.startsWith(":")) return undefined;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    const raw = colon === -1 ? "" : text.slice(colon + 1);
    const value = raw.startsWith(" ") ? raw.slice(1) : raw;
    if (field === "data") message.data = message.data === undefined ? value : `${message.data}\n${value}`;
    else if (field === "id" && !value.includes("\0")) message.id = value;
    else if (field === "event") message.event = value;
    else if (field === "retry" && /^\d+$/.test(value)) message.retry = Number(value);
    return undefined;
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      // A trailing CR may be the first half of a CRLF: it waits for the next chunk, or for the end.
      const complete = done || !(buffer + value).endsWith("\r");
      buffer += done ? "" : value;
      const lines = (complete ? buffer : buffer.slice(0, -1)).split(/\r\n|\r|\n/);
      // The last piece is a line still arriving (at the end of the stream: an unterminated one, dropped).
      buffer = (lines.pop() ?? "") + (complete ? "" : "\r");
      for (const text of lines) {
        const ended = line(text);
        if (ended) yield ended;
      }
      if (done) return;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}
