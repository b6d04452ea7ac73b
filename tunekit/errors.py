"""Exception and warning types.

Every error a user can cause derives from :class:`TunekitError`, so the CLI can turn it into a
one-paragraph message and an exit code instead of a traceback. Messages say what was expected, what
was found, and how to fix it.
"""

from __future__ import annotations


class TunekitError(Exception):
    """Base class of every error tunekit raises on purpose."""


class ConfigError(TunekitError):
    """The configuration (YAML, CLI flags or API keywords) is invalid.

    ``path`` is the dotted YAML path of the offending field (``tuning.exit_policy.max_trials``).
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class PluginError(TunekitError):
    """A plugin is unknown, ambiguous, of the wrong kind, or rejects its parameters."""


class NotSupportedError(TunekitError):
    """A plugin or model cannot do what was asked (e.g. an adaptor without tensor inspection)."""


class ModelError(TunekitError):
    """The model cannot be loaded, traced or run by its adaptor."""


class DataError(TunekitError):
    """Calibration or evaluation data is missing, empty or of the wrong shape."""


class UserCodeError(TunekitError):
    """The user's own code (eval_func, data factory, model factory) raised or returned garbage."""


class TrialError(TunekitError):
    """One trial failed (quantization or evaluation of one candidate); the tuning goes on."""


class TunekitWarning(UserWarning):
    """Something the user should change, though tuning can proceed."""


class TuningFailed(TunekitError):
    """Every candidate fails (see :mod:`tunekit.failures`): the tuning stopped with the error
    they share instead of spending its budget on it."""
