"""What some architectures need for Torch-Pruning to prune them, registered by the
module types that identify them (the architecture-adapter registry; plugins add theirs):

  pruners      Torch-Pruning pruners for module types it cannot see into
  tracing      a context in which those modules' forwards are swapped for simple,
               channel-preserving ones while the dependency graph is built (their
               reshapes otherwise break or stall Torch-Pruning's index mapping)
  exclude      layers that must stay whole (name patterns, added to target.exclude)
  after_prune  attribute fixes the architecture's forward needs once pruned
  exact        whether the pruned model computes the channel-cut original exactly
               (not so where a LayerNorm normalises over channels: its statistics change)

Built in: attention-aligned pruning of nn.MultiheadAttention (ViT), Swin's window
attention and patch merging, MaxViT's attention, and ShuffleNetV2's channel shuffle.
Found with Torch-Pruning 1.6.1 and torchvision 0.29.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

from ..registry import ARCHITECTURES


@dataclass(frozen=True)
class Adapter:
    identifies: tuple[type, ...]                         # the adapter applies when the model holds one of these
    pruners: dict = field(default_factory=dict)          # module type -> tp.pruner.BasePruningFunc
    tracing: Optional[Callable[[], contextlib.AbstractContextManager]] = None
    exclude: tuple[str, ...] = ()
    after_prune: Optional[Callable[[nn.Module], None]] = None
    exact: bool = True


def adapters_for(model: nn.Module) -> list[Adapter]:
    types = {type(m) for m in model.modules()}
    return [a for _, a in ARCHITECTURES.items() if any(issubclass(t, a.identifies) for t in types)]


@contextlib.contextmanager
def tracing(adapters: list[Adapter]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for a in adapters:
            if a.tracing is not None:
                stack.enter_context(a.tracing())
        yield


def _keep(n: int, idxs) -> list[int]:
    gone = {int(i) for i in idxs}
    return [i for i in range(n) if i not in gone]


def _swapped(*pairs):
    """A context that sets (owner, attribute, value) for its duration."""
    @contextlib.contextmanager
    def context():
        saved = [(o, a, getattr(o, a)) for o, a, _ in pairs]
        for o, a, v in pairs:
            setattr(o, a, v)
        try:
            yield
        finally:
            for o, a, v in saved:
                setattr(o, a, v)
    return context


# -- nn.MultiheadAttention (torchvision's ViT) --------------------------------------------------------------------
class HeadAlignedAttentionPruner(tp.pruner.function.MultiheadAttentionPruner):
    """Torch-Pruning's MultiheadAttention pruner with the embedding split into heads:
    the same positions go in every head, so each keeps its own (fewer) dimensions
    and the width stays a multiple of the head count."""

    def get_out_channel_groups(self, layer):
        return layer.num_heads

    get_in_channel_groups = get_out_channel_groups


def _vit_hidden_dim(model: nn.Module) -> None:
    if hasattr(model, "hidden_dim") and hasattr(model, "conv_proj"):
        model.hidden_dim = model.conv_proj.out_channels       # _process_input reshapes with it


ARCHITECTURES.add("multihead_attention", Adapter(
    (nn.MultiheadAttention,), pruners={nn.MultiheadAttention: HeadAlignedAttentionPruner()},
    after_prune=_vit_hidden_dim, exact=False))


# -- Swin ------------------------------------------------------------------------------------------------------------
def _swin() -> Optional[Adapter]:
    from torchvision.models.swin_transformer import PatchMerging, ShiftedWindowAttention

    class WindowAttentionPruner(tp.pruner.BasePruningFunc):
        """qkv (its q, k and v row blocks and its columns) and proj cut together; heads
        stay, each loses the same positions."""
        TARGET_MODULES = ShiftedWindowAttention

        def prune_out_channels(self, layer, idxs):
            c = layer.qkv.in_features
            keep = _keep(c, idxs)
            keep3 = keep + [k + c for k in keep] + [k + 2 * c for k in keep]
            p = self._prune_parameter_and_grad
            layer.qkv.weight = p(p(layer.qkv.weight, keep3, 0), keep, 1)
            if layer.qkv.bias is not None:
                layer.qkv.bias = p(layer.qkv.bias, keep3, 0)
            layer.proj.weight = p(p(layer.proj.weight, keep, 0), keep, 1)
            if layer.proj.bias is not None:
                layer.proj.bias = p(layer.proj.bias, keep, 0)
            layer.qkv.in_features, layer.qkv.out_features = len(keep), 3 * len(keep)
            layer.proj.in_features = layer.proj.out_features = len(keep)
            return layer

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer):
            return layer.qkv.in_features

        get_in_channels = get_out_channels

        def get_out_channel_groups(self, layer):
            return layer.num_heads

        get_in_channel_groups = get_out_channel_groups

    class PatchMergingPruner(tp.pruner.BasePruningFunc):
        """Four neighbours concatenated (4C) -> norm -> reduction (2C): input channel i is
        q * C + i of the norm and the reduction's columns, for each quarter q."""
        TARGET_MODULES = PatchMerging

        def prune_in_channels(self, layer, idxs):
            c = layer.dim
            keep4 = [q * c + k for q in range(4) for k in _keep(c, idxs)]
            p = self._prune_parameter_and_grad
            layer.norm.weight = p(layer.norm.weight, keep4, 0)
            layer.norm.bias = p(layer.norm.bias, keep4, 0)
            layer.norm.normalized_shape = (len(keep4),)
            layer.reduction.weight = p(layer.reduction.weight, keep4, 1)
            layer.reduction.in_features = len(keep4)
            layer.dim = len(keep4) // 4
            return layer

        def prune_out_channels(self, layer, idxs):
            keep = _keep(layer.reduction.out_features, idxs)
            layer.reduction.weight = self._prune_parameter_and_grad(layer.reduction.weight, keep, 0)
            if layer.reduction.bias is not None:
                layer.reduction.bias = self._prune_parameter_and_grad(layer.reduction.bias, keep, 0)
            layer.reduction.out_features = len(keep)
            return layer

        def get_in_channels(self, layer):
            return layer.dim

        def get_out_channels(self, layer):
            return layer.reduction.out_features

    def merge_for_tracing(self, x):         # (B, H, W, C) -> (B, H/2, W/2, 2C), channels in order
        y = F.avg_pool2d(x.permute(0, 3, 1, 2), 2, ceil_mode=True).permute(0, 2, 3, 1)
        return torch.cat([y, y], -1)

    return Adapter((ShiftedWindowAttention,),
                   pruners={ShiftedWindowAttention: WindowAttentionPruner(), PatchMerging: PatchMergingPruner()},
                   tracing=_swapped((ShiftedWindowAttention, "forward", lambda self, x: x * 1.0),
                                    (PatchMerging, "forward", merge_for_tracing)),
                   exact=False)


# -- MaxViT ----------------------------------------------------------------------------------------------------------
def _maxvit() -> Optional[Adapter]:
    from torchvision.models.maxvit import RelativePositionalMultiHeadAttention as Attention
    from torchvision.models.maxvit import WindowDepartition, WindowPartition

    class AttentionPruner(tp.pruner.BasePruningFunc):
        """to_qkv (q, k, v blocks) and merge cut together; heads stay, head_dim shrinks
        (the trained scale factor is kept)."""
        TARGET_MODULES = Attention

        def prune_out_channels(self, layer, idxs):
            d = layer.to_qkv.in_features
            keep = _keep(d, idxs)
            keep3 = keep + [k + d for k in keep] + [k + 2 * d for k in keep]
            p = self._prune_parameter_and_grad
            layer.to_qkv.weight = p(p(layer.to_qkv.weight, keep3, 0), keep, 1)
            layer.to_qkv.bias = p(layer.to_qkv.bias, keep3, 0)
            layer.merge.weight = p(p(layer.merge.weight, keep, 0), keep, 1)
            layer.merge.bias = p(layer.merge.bias, keep, 0)
            layer.to_qkv.in_features, layer.to_qkv.out_features = len(keep), 3 * len(keep)
            layer.merge.in_features = layer.merge.out_features = len(keep)
            layer.head_dim = len(keep) // layer.n_heads
            return layer

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer):
            return layer.to_qkv.in_features

        get_in_channels = get_out_channels

        def get_out_channel_groups(self, layer):
            return layer.n_heads

        get_in_channel_groups = get_out_channel_groups

    return Adapter((Attention,), pruners={Attention: AttentionPruner()},
                   tracing=_swapped((Attention, "forward", lambda self, x: x * 1.0),
                                    (WindowPartition, "forward", lambda self, x, p: x.permute(0, 2, 3, 1)),
                                    (WindowDepartition, "forward", lambda self, x, p, hp, wp: x.permute(0, 3, 1, 2))),
                   exact=False)


# -- ShuffleNetV2 ----------------------------------------------------------------------------------------------------
def _shufflenet() -> Optional[Adapter]:
    import torchvision.models.shufflenetv2 as shufflenet

    # Torch-Pruning can tie a layer's inputs to its outputs only index for index, not
    # through the shuffle's permutation, and the next block's chunk(2) needs equal
    # halves: so the shuffled stream stays whole and each branch's inner convs are
    # pruned. While tracing, the shuffle (view-transpose-view, which breaks the index
    # mapping) is a no-op that keeps channels in place.
    return Adapter((shufflenet.ShuffleNetV2,),
                   tracing=_swapped((shufflenet, "channel_shuffle", lambda x, groups: x * 1.0)),
                   exclude=("conv1.*", "*.branch1.*", "*.branch2.5"), exact=True)


for _name, _make in (("swin", _swin), ("maxvit", _maxvit), ("shufflenet_v2", _shufflenet)):
    try:
        ARCHITECTURES.add(_name, _make())
    except (ImportError, AttributeError):      # another torchvision: that architecture is left unadapted
        pass
