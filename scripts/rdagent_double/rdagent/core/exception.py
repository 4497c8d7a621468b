"""Double of `rdagent.core.exception`: the errors the model loop distinguishes."""


class FactorEmptyError(Exception):
    """No factor data could be gathered from the given experiments."""


class ModelEmptyError(Exception):
    """The model loop skips a loop on this error (and only on this one)."""
