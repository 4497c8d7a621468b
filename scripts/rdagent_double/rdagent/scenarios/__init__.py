"""Double of `rdagent.scenarios`."""
