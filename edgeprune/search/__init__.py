"""Searching for the model to ship: `find` screens every candidate cut to the
device's budget and rebuilt, fine-tunes the promising ones in rungs (successive
halving, decided by Optuna), and exports the winner.

    >>> from edgeprune import load_config
    >>> from edgeprune.search import find
    >>> result = find(load_config("examples/find.yaml"))
    >>> print(result.format())           # the winner beside the goals, and the rungs
"""
from .controller import find
from ..search_record import SearchRecord, read
from .result import FindResult

__all__ = ["find", "FindResult", "SearchRecord", "read"]
