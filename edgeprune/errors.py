"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""


class EdgepruneError(Exception):
    """Bad input or environment: the message names the culprit and the fix."""


class ConfigError(EdgepruneError):
    """A sweep config (or an override) is invalid."""


class CheckpointError(EdgepruneError):
    """A checkpoint file is missing, corrupt or does not fit the model."""


class OfflineError(EdgepruneError):
    """Something had to be downloaded and the network is not reachable."""
