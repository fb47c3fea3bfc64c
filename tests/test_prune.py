"""Pruning: physical removal, equivalence with the channel-cut original, criteria."""
import copy

import pytest
import torch
import torch.nn as nn

from edgeprune.errors import EdgepruneError
from edgeprune.measure import count_macs, count_params
from edgeprune.models import create_model
from edgeprune.prune import cut_reference, prune_model
from edgeprune.registry import ALGORITHMS

import tiny_models


def _randomize_bn(model: nn.Module) -> nn.Module:
    """Give BatchNorm layers non-trivial statistics so outputs are O(1) and every
    channel matters (random init leaves them as identity maps)."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


EQUIVALENCE_MODELS = {
    "residual (CIFAR ResNet, option-A shortcuts)": lambda: create_model("resnet20", 10, pretrained=False),
    "residual (torchvision resnet18)": lambda: create_model("resnet18", 10, pretrained=False),
    "depthwise (MobileNetV2)": lambda: tiny_models.tiny_mobilenet(10),
    "depthwise + squeeze-excite (EfficientNet)": lambda: tiny_models.tiny_efficientnet(10),
    "concatenating (DenseNet)": lambda: tiny_models.tiny_densenet(10),
    "concatenating (GoogLeNet)": lambda: create_model("googlenet", 10, pretrained=False),
}


@pytest.mark.parametrize("kind", list(EQUIVALENCE_MODELS))
@pytest.mark.parametrize("algorithm", ["l1", "fpgm"])
def test_pruned_model_equals_original_with_channels_cut(kind, algorithm):
    original = _randomize_bn(EQUIVALENCE_MODELS[kind]())
    x = torch.randn(3, 3, 32, 32)
    result = prune_model(original, algorithm, 0.4, input_size=32)
    assert count_params(result.model) < count_params(original)
    assert result.removed_inputs, "nothing was recorded as removed"
    reference = cut_reference(original, result)
    with torch.no_grad():
        expected, got, unpruned = reference(x), result.model(x), original(x)
    scale = expected.abs().max()
    assert scale > 1e-3
    assert (got - expected).abs().max() <= 1e-4 * scale
    # and cutting the channels really changed the function: the test can fail
    assert (unpruned - expected).abs().max() > 1e-3 * scale


def test_input_model_is_left_untouched():
    model = create_model("resnet20", 10, pretrained=False)
    before = copy.deepcopy(model.state_dict())
    prune_model(model, "l1", 0.5, input_size=32)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("algorithm", ["l1", "l2", "fpgm", "random", "taylor"])
def test_every_structured_algorithm_removes_channels(algorithm):
    model = create_model("resnet20", 10, pretrained=False)
    calibration = [(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))] if algorithm == "taylor" else None
    result = prune_model(model, algorithm, 0.5, input_size=32, calibration=calibration)
    assert result.structured
    assert 0.45 < result.channel_ratio < 0.55
    assert 0.65 < 1 - count_params(result.model) / count_params(model) < 0.8
    assert result.model(torch.randn(2, 3, 32, 32)).shape == (2, 10)  # classifier keeps its classes
    assert all(after <= before for before, after in result.layer_channels.values())
    assert result.layer_channels["linear"][1] == 10


def test_taylor_without_calibration_is_refused():
    with pytest.raises(ValueError, match="calibration"):
        prune_model(create_model("resnet20", 10, pretrained=False), "taylor", 0.5, input_size=32)


def _plain_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 10, 3, padding=1), nn.ReLU(), nn.Conv2d(10, 4, 3, padding=1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def _kept_filters(original: nn.Module, pruned: nn.Module) -> set:
    w0, w1 = original[0].weight.flatten(1), pruned[0].weight.flatten(1)
    return {int((w0 - row).abs().sum(1).argmin()) for row in w1}


def test_l1_and_l2_keep_the_filters_with_the_largest_own_norm():
    net = _plain_net()
    with torch.no_grad():  # make the L1 and L2 rankings disagree on purpose
        net[0].weight.mul_(torch.linspace(0.5, 2, 10).view(10, 1, 1, 1))
        net[0].weight[0] = 0.0
        net[0].weight[0, 0, 0, 0] = 5.0   # largest L2 norm, small L1 norm
    norms = {"l1": net[0].weight.flatten(1).abs().sum(1), "l2": net[0].weight.flatten(1).norm(dim=1)}
    for name, norm in norms.items():
        pruned = prune_model(net, name, 0.5, input_size=8).model
        assert _kept_filters(net, pruned) == set(norm.topk(5).indices.tolist()), name


def test_fpgm_removes_the_filters_nearest_the_geometric_median():
    net = _plain_net()
    w = net[0].weight.flatten(1)
    distance_sum = torch.cdist(w, w).sum(1)
    pruned = prune_model(net, "fpgm", 0.5, input_size=8).model
    assert _kept_filters(net, pruned) == set(distance_sum.topk(5).indices.tolist())


def test_random_is_seeded():
    net = create_model("resnet20", 10, pretrained=False)
    a = prune_model(net, "random", 0.5, input_size=32, seed=3).removed_inputs
    b = prune_model(net, "random", 0.5, input_size=32, seed=3).removed_inputs
    c = prune_model(net, "random", 0.5, input_size=32, seed=4).removed_inputs
    assert a == b and a != c


@pytest.mark.parametrize("kind", ["params", "macs"])
def test_global_target_is_met_within_one_point(kind):
    model = create_model("resnet20", 10, pretrained=False)
    cost = count_params if kind == "params" else (lambda m: count_macs(m, 32))
    result = prune_model(model, "l1", 0.4, input_size=32, kind=kind)
    assert abs((1 - cost(result.model) / cost(model)) - 0.4) <= 0.01
    assert 0 < result.layer_rate < 0.95


def test_unreachable_global_target_says_why():
    model = tiny_models.tiny_cnn(10)
    with pytest.raises(EdgepruneError, match="cannot remove"):
        prune_model(model, "l1", 0.99, input_size=16, kind="params")


def test_reduction_grows_with_rate():
    model = create_model("resnet20", 10, pretrained=False)
    reductions = [1 - count_params(prune_model(model, "l1", r, input_size=32).model) / count_params(model)
                  for r in (0.1, 0.3, 0.5, 0.7, 0.8)]
    assert reductions == sorted(reductions) and len(set(reductions)) == len(reductions)


def test_unstructured_reports_sparsity_and_keeps_shapes():
    model = create_model("resnet20", 10, pretrained=False)
    result = prune_model(model, "unstructured_l1", 0.6, input_size=32)
    assert not result.structured
    assert abs(result.sparsity - 0.6) < 0.01
    assert count_params(result.model) == count_params(model)
    with pytest.raises(EdgepruneError, match="plain rates"):
        prune_model(model, "unstructured_l1", 0.5, input_size=32, kind="params")


def test_target_patterns_limit_what_is_pruned():
    model = create_model("resnet20", 10, pretrained=False)
    result = prune_model(model, "l1", 0.5, input_size=32, include=["layer3.*"], exclude=["layer3.0.*"])
    changed = {n for n, (b, a) in result.layer_channels.items() if a < b}
    assert changed and all(n.startswith("layer3.") and not n.startswith("layer3.0.") for n in changed)
    assert result.targets == [n for n in result.layer_channels
                              if n.startswith("layer3.") and not n.startswith("layer3.0.")]


def test_round_to_gives_multiples():
    model = create_model("resnet20", 10, pretrained=False)
    result = prune_model(model, "l1", 0.3, input_size=32, round_to=8)
    assert all(a % 8 == 0 for n, (b, a) in result.layer_channels.items() if n in result.targets)


def test_pruned_model_trains_in_train_mode():
    """Train mode runs the branches eval-mode tracing never sees (googlenet's): the
    pruned model must run there, give one logit row per image, and reach every weight."""
    for name in ("googlenet", "resnet20"):
        result = prune_model(create_model(name, 10, pretrained=False), "l1", 0.5, input_size=32)
        result.model.train()
        out = result.model(torch.randn(2, 3, 32, 32))
        assert isinstance(out, torch.Tensor) and out.shape == (2, 10), name
        out.sum().backward()
        params = list(result.model.parameters())
        assert all(p.grad is not None for p in params), name
        assert any(float(p.grad.abs().sum()) > 0 for p in params if p.ndim == 4), name


def test_algorithm_registry_names_are_stable():
    assert set(ALGORITHMS) >= {"l1", "l2", "fpgm", "random", "taylor", "unstructured_l1"}


@pytest.mark.parametrize("name, layers", [("vit_b_32", ["conv2d", "linear"]), ("swin_t", ["conv2d", "linear"]),
                                          ("maxvit_t", ["conv2d", "linear"]), ("shufflenet_v2_x0_5", ["conv2d"])])
@pytest.mark.slow
def test_transformers_and_channel_shuffle_prune_run_and_rebuild(name, layers):
    """Architecture adapters: heads kept whole and aligned, attribute fixes after
    pruning, the shuffle's stream left whole; the history rebuilds the same model."""
    from edgeprune.prune import replay
    original = _randomize_bn(create_model(name, 10, pretrained=False).eval())
    result = prune_model(original, "l1", 0.3, input_size=224, layers=layers)
    assert not result.removed_nothing and count_params(result.model) < 0.8 * count_params(original)
    x = torch.randn(1, 3, 224, 224)
    fresh = create_model(name, 10, pretrained=False, architecture_only=True).eval()
    replay(fresh, result.history, torch.zeros(1, 3, 224, 224))
    fresh.load_state_dict(result.model.state_dict())
    with torch.no_grad():
        y = result.model(x)
        assert y.shape == (1, 10) and torch.equal(fresh(x), y)
    if name.startswith("vit"):
        mha = result.model.encoder.layers[0].self_attention
        assert mha.embed_dim % mha.num_heads == 0 and result.model.hidden_dim == mha.embed_dim
    if name.startswith("shufflenet"):      # no LayerNorm: the channel-cut original, exactly
        with torch.no_grad():
            expected = cut_reference(original, result)(x)
        assert (y - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_a_graph_search_past_its_time_limit_fails_the_trial_clearly(tiny_cifar, tmp_path):
    from edgeprune import load_results
    from conftest import sweep_config
    import subprocess
    import sys
    import yaml
    # in a process of its own: the alarm interrupts the graph search wherever it is, and in this
    # suite's long-lived process (hooks and runtimes of many tests loaded) that once crashed it
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(sweep_config(tiny_cifar, tmp_path / "run", baseline=False,
                                                    prune={"timeout_s": 0.001, "reconstruct": 0})))
    proc = subprocess.run([sys.executable, "-m", "edgeprune.cli", "sweep", str(cfg_file), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    err = load_results(tmp_path / "run").iloc[0]["error"]
    assert "StepTimeout" in err and "took more than 0.001 s" in err and "prune.timeout_s" in err
