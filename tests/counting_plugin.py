"""A plugin for tests: the optimizer `counting_sgd` (plain SGD) appends a line to
the file named by $EDGEPRUNE_COUNT_FILE each time a fine-tune builds it, in
whatever process runs it (the driver or a Ray worker): it counts fine-tunes."""
import os

from edgeprune import plugins
from edgeprune.train.optim import sgd


@plugins.register_optimizer("counting_sgd")
def counting_sgd(model, cfg):
    path = os.environ.get("EDGEPRUNE_COUNT_FILE")
    if path:
        with open(path, "a") as f:
            f.write(f"{os.getpid()}\n")
    return sgd(model, cfg)
