import type { Principal } from "../auth/rbac";
import type { Logger } from "../observability/logger";
import type { TraceContext } from "../observability/trace-context";

/** Per-request variables every middleware and handler may read from `c.var`. */
export interface AppEnv {
  Variables: {
    requestId: string;
    /** the request's logger, bound to its request id */
    logger: Logger;
    principal?: Principal;
    /** the W3C trace this request belongs to (continued from `traceparent` or new) */
    trace?: TraceContext;
  };
}
