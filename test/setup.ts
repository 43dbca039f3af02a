import { setDefaultTimeout } from "bun:test";

// Preloaded once per `bun test` run (bunfig.toml).
process.env.TZ = "UTC";
// Integration tests boot databases and start real servers; on a loaded 2-core machine that can take
// several seconds. Bun ignores bunfig's [test].timeout, and setDefaultTimeout applies to one file:
// here, to the first file of a run; every test file repeats it for itself.
setDefaultTimeout(30_000);
