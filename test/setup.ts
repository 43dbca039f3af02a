import { setDefaultTimeout } from "bun:test";

// Loaded before every test file (bunfig.toml).
process.env.TZ = "UTC";
// Integration tests boot databases and start real servers; on a loaded 2-core machine that can take
// several seconds. bunfig's [test].timeout is not applied to hooks, so set the default here.
setDefaultTimeout(30_000);
