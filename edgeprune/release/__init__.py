"""What leaves a run: a finished trial's model as verified files plus a model card.

`edgeprune deploy RUN TRIAL` and `edgeprune recommend --export DIR` both call
`release_trial`; they differ only in the formats they ask for (formats.py, a
registry). Every file is checked against the trial's PyTorch model on the run's own
test images (random inputs when the data set cannot be read: the card says so); a
file that fails the check is moved aside and the release fails. The folder also
gets deploy.json (how to feed the files) and model_card.md / .json
(edgeprune.model_card).
"""
from .formats import DEPLOY_FORMATS, EXPORT_FORMATS, RUNTIMES
from .release import Release, ReleaseResult, release_trial

__all__ = ["release_trial", "ReleaseResult", "Release", "DEPLOY_FORMATS", "EXPORT_FORMATS", "RUNTIMES"]
