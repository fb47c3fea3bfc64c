"""Finding and replacing a model's classifier head."""
from __future__ import annotations

import torch.nn as nn


def classifier_name(model: nn.Module) -> str:
    """Qualified name of the final classifier: the last Linear (or 1x1 Conv2d, as in
    SqueezeNet) registered in the model. It is never pruned."""
    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)):
            last = name
    if last is None:
        raise ValueError(f"{type(model).__name__} has no Linear or 1x1 Conv2d classifier")
    return last


def replace_head(model: nn.Module, num_classes: int) -> bool:
    """Give the model a fresh classifier with `num_classes` outputs; False if it had it."""
    name = classifier_name(model)
    head = model.get_submodule(name)
    if isinstance(head, nn.Linear):
        if head.out_features == num_classes:
            return False
        new = nn.Linear(head.in_features, num_classes, bias=head.bias is not None)
    else:
        if head.out_channels == num_classes:
            return False
        new = nn.Conv2d(head.in_channels, num_classes, 1, bias=head.bias is not None)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)
    return True
