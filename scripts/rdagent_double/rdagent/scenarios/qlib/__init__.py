"""Double of `rdagent.scenarios.qlib`."""
