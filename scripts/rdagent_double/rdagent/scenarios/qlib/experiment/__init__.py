"""Double of `rdagent.scenarios.qlib.experiment`."""
