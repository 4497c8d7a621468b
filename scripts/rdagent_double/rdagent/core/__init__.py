"""Double of `rdagent.core`."""
