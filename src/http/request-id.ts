import { uuidv7 } from "../db/ids";
import type { RequestHook } from "./request-hooks";

/** A caller's id is accepted only when it is short and plain, so it is safe to log and echo. */
const ACCEPTED = /^[\w\-=]{1,128}$/;

/**
 * Every request's id (`c.var.requestId`): the caller's `X-Request-Id` when acceptable, otherwise a
 * new UUIDv7; echoed in the answer's `X-Request-Id`, on errors too, so a caller can quote it.
 */
export function requestId(): RequestHook<string> {
  return {
    before(c) {
      const incoming = c.req.raw.headers.get("x-request-id");
      const id = incoming !== null && ACCEPTED.test(incoming) ? incoming : uuidv7();
      c.set("requestId", id);
      return id;
    },
    after(c, id) {
      if (c.finalized) c.res.headers.set("X-Request-Id", id);
    },
  };
}
