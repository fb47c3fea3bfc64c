"""What can be named in a config: `models` and `algorithms` (plugins' included)."""
from __future__ import annotations

from ..errors import EdgepruneError
from .args import command


def models_command(args) -> int:
    from ..models import list_models
    from ..registry import MODELS
    families = sorted({e.family for _, e in MODELS.items()})
    if args.family and args.family not in families:
        raise EdgepruneError(f"unknown family {args.family!r}; choose from: {', '.join(families)}")
    for name in list_models(args.family):
        print(name)
    return 0


def algorithms_command(args) -> int:
    from ..registry import ALGORITHMS
    for name, a in ALGORITHMS.items():
        print(f"{name:16s} {'structured' if a.structured else 'unstructured':12s} {a.description}")
    return 0


def add(sub) -> None:
    s = command(sub, "models", "list the model names create_model knows", models_command)
    s.add_argument("--family", help="only this family (torchvision, cifar_resnet, cifar_vgg, a plugin's)")
    command(sub, "algorithms", "list the pruning algorithms", algorithms_command)
