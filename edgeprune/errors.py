"""Errors a user can act on. The CLI prints them as one line and exits with code 2
(bad input: EdgepruneError, ConfigError, CheckpointError) or 1 (the run itself could
not go on: RunError, OfflineError)."""


class EdgepruneError(Exception):
    """Bad input or environment: the message names the culprit and the fix."""


class ConfigError(EdgepruneError):
    """A sweep config (or an override) is invalid."""


class CheckpointError(EdgepruneError):
    """A checkpoint file is missing, corrupt or does not fit the model."""


class RunError(EdgepruneError):
    """The run could not go on (another sweep holds the folder, trials failed, ...)."""


class OfflineError(RunError):
    """Something had to be downloaded and the network is not reachable."""


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type's name when it has none),
    cut to `limit` characters: what goes into one-line errors and the store."""
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= limit else line[:limit] + "..."


def describe_error(exc: BaseException) -> str:
    """One line for the store: the exception and where it was raised."""
    import traceback
    from pathlib import Path
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}{where}"
