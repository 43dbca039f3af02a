// Loaded before every test file (bunfig.toml). Tests run with a deterministic, quiet environment.
process.env.TZ = "UTC";
