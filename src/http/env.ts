import type { Principal } from "../auth/rbac";
import type { Logger } from "../observability/logger";

/** Per-request variables every middleware and handler may read from `c.var`. */
export interface AppEnv {
  Variables: {
    requestId: string;
    /** the request's logger, bound to its request id */
    logger: Logger;
    principal?: Principal;
  };
}
