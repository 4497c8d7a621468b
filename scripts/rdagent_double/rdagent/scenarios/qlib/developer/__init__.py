"""Double of `rdagent.scenarios.qlib.developer`."""
