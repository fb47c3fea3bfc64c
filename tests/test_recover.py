"""Recovery without fine-tuning (edgeprune.recover): exactness, every architecture
family the registry prunes, real pretrained weights, bad input, and int8 variants of a
rebuilt trial."""
from __future__ import annotations

import copy
import importlib.util
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import tiny_models
from conftest import SHARED, sweep_config
from edgeprune import load_config, load_results, run_sweep
from edgeprune.cli import main
from edgeprune.errors import EdgepruneError
from edgeprune.models import create_model
from edgeprune.prune import prune_model
from edgeprune.recover import derive_kept_outputs, reconstruct
from edgeprune.recover.layers import plan
from edgeprune.train import recalibrate_bn


def _lively(model: nn.Module, size: int) -> nn.Module:
    """A random model whose activations look like a trained one's: BatchNorm statistics
    estimated on random images, non-trivial affine parameters, no zero-initialised head."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.weight.data = torch.rand(m.weight.shape, generator=g) + 0.5
            m.bias.data = torch.rand(m.bias.shape, generator=g) * 0.6 - 0.3
        if isinstance(m, nn.Linear) and not m.weight.abs().sum():
            nn.init.normal_(m.weight, std=0.1)
    recalibrate_bn(model, [(torch.randn(32, 3, size, size, generator=g), None) for _ in range(4)], 4)
    return model.eval()


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# -- exactness ------------------------------------------------------------------------------------------------------

def test_rebuilding_an_unpruned_model_leaves_its_outputs_unchanged():
    model = _lively(create_model("resnet20", 10, pretrained=False), 32)
    copy_ = copy.deepcopy(model)
    x = _images(64, 32)
    names = [n for n, m in copy_.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    report = reconstruct(model, copy_, x, layers=names, eval_images=_images(16, 32, 1))
    assert report.rebuilt == names and not report.skipped
    with torch.no_grad():
        diff = (copy_(x) - model(x)).abs().max() / model(x).abs().max()
    assert diff < 1e-5
    # without naming layers, nothing changed means nothing to rebuild
    untouched = copy.deepcopy(model)
    assert reconstruct(model, untouched, x).rebuilt == []


def _pruned_linear_pair():
    torch.manual_seed(0)
    unpruned = nn.Sequential(nn.Linear(10, 8), nn.Linear(8, 3))
    keep = [0, 2, 3, 5, 7]
    pruned = nn.Sequential(nn.Linear(10, 5), nn.Linear(5, 3))
    with torch.no_grad():
        pruned[0].weight.copy_(unpruned[0].weight[keep])
        pruned[0].bias.copy_(unpruned[0].bias[keep])
        pruned[1].weight.copy_(unpruned[1].weight[:, keep])
        pruned[1].bias.copy_(unpruned[1].bias)
    return unpruned, pruned, keep


def test_on_a_linear_network_the_solve_is_the_least_squares_optimum():
    unpruned, pruned, keep = _pruned_linear_pair()
    x = torch.randn(300, 10, generator=torch.Generator().manual_seed(2))
    reconstruct(unpruned, pruned, x, ridge=0.0, max_rows=10_000, relu_steps=0)
    with torch.no_grad():
        hidden = unpruned[0](x)[:, keep].double()             # the first layer reproduces its kept outputs exactly
        assert torch.allclose(pruned[0](x).double(), hidden, atol=1e-5)
        design = torch.cat([hidden, torch.ones(len(x), 1, dtype=torch.float64)], 1)
        best = torch.linalg.lstsq(design, unpruned(x).double()).solution
    assert torch.allclose(pruned[1].weight.double(), best[:-1].T, rtol=1e-4, atol=1e-5)
    assert torch.allclose(pruned[1].bias.double(), best[-1], rtol=1e-4, atol=1e-5)


def test_a_strided_padded_conv_is_solved_on_its_patches():
    """The conv's rows are its unfolded patches: the solve matches lstsq on F.unfold."""
    torch.manual_seed(0)
    unpruned = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 4, 3, stride=2, padding=1))
    keep = [0, 1, 3, 5]
    pruned = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, stride=2, padding=1))
    with torch.no_grad():
        pruned[0].weight.copy_(unpruned[0].weight[keep])
        pruned[0].bias.copy_(unpruned[0].bias[keep])
        pruned[1].weight.copy_(unpruned[1].weight[:, keep])
        pruned[1].bias.copy_(unpruned[1].bias)
    x = _images(20, 9)
    reconstruct(unpruned, pruned, x, ridge=0.0, max_rows=100_000, relu_steps=0)
    with torch.no_grad():
        hidden = unpruned[0](x)[:, keep]
        patches = F.unfold(hidden, 3, padding=1, stride=2).transpose(1, 2).reshape(-1, 4 * 9).double()
        target = unpruned(x).permute(0, 2, 3, 1).reshape(-1, 4).double()
        design = torch.cat([patches, torch.ones(len(patches), 1, dtype=torch.float64)], 1)
        best = torch.linalg.lstsq(design, target).solution
    assert torch.allclose(pruned[1].weight.reshape(4, -1).double(), best[:-1].T, rtol=1e-4, atol=1e-4)


# -- every family the registry prunes -------------------------------------------------------------------------------

def _tiny_vit():
    return torchvision.models.VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10)


FAMILIES = {
    "cifar_resnet (option-A maps)": (lambda: create_model("resnet20", 10, pretrained=False), 32, ("conv2d",)),
    "depthwise + inverted residual": (tiny_models.tiny_mobilenet, 32, ("conv2d",)),
    "squeeze-excite": (tiny_models.tiny_efficientnet, 32, ("conv2d",)),
    "concatenation (densenet)": (tiny_models.tiny_densenet, 32, ("conv2d",)),
    "convnext-like linear": (tiny_models.tiny_convnext, 32, ("conv2d", "linear")),
    "vit linear": (_tiny_vit, 32, ("conv2d", "linear")),
    "user module:factory": (lambda: create_model("tiny_models:tiny_cnn", 10, pretrained=False), 32, ("conv2d",)),
    "torchvision resnet (1x1 projections, in-place sums)":
        (lambda: torchvision.models.resnet18(num_classes=10), 32, ("conv2d",)),
}
SLOW = {"cifar_resnet (option-A maps)", "torchvision resnet (1x1 projections, in-place sums)"}


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW else f for f in FAMILIES])
def test_rebuilding_lowers_the_logit_error_in_every_family(family):
    build, size, layers = FAMILIES[family]
    model = _lively(build(), size)
    result = prune_model(model, "l1", 0.4, size, layers=layers)
    pruned = copy.deepcopy(result.model)
    report = reconstruct(model, pruned, _images(256, size), kept_outputs=result.kept_outputs,
                         eval_images=_images(64, size, 1))
    assert report.rebuilt
    assert report.logit_error_after < report.logit_error_before, report.summary()
    assert report.error_on == "held-out" and report.error_images == 64
    if family == "vit linear":     # attention projections are used as raw weights: named, left as pruned
        assert any("MultiheadAttention" in why for why in report.skipped.values())
    else:
        assert not report.skipped, report.skipped


def test_the_probe_finds_residual_sums_and_relus():
    model = torchvision.models.resnet18(num_classes=10).eval()
    result = prune_model(model, "l1", 0.3, 32)
    layers = {l.name: l for l in plan(model, result.model, _images(2, 32), result.kept_outputs).layers}
    assert layers["layer1.0.conv2"].sum_index is not None and layers["layer1.0.conv2"].relu   # out += identity; relu
    assert layers["layer1.0.conv1"].sum_index is None and layers["layer1.0.conv1"].relu
    assert layers["layer2.0.downsample.0"].sum_index is None     # the sum went to the branch's conv2
    assert layers["layer1.0.conv1"].norm == "layer1.0.bn1"


def test_kept_channels_found_from_the_weights_match_the_pruning_record():
    model = _lively(tiny_models.tiny_mobilenet(), 32)
    result = prune_model(model, "l1", 0.4, 32)
    modules, original = dict(result.model.named_modules()), dict(model.named_modules())
    checked = 0
    for name, kept in result.kept_outputs.items():
        if isinstance(modules[name], nn.Conv2d):
            assert derive_kept_outputs(original[name], modules[name]).tolist() == kept
            checked += 1
    assert checked > 10


def test_waves_bound_the_memory_and_still_rebuild():
    model = _lively(tiny_models.tiny_cnn(), 32)
    result = prune_model(model, "l1", 0.5, 32)
    pruned = copy.deepcopy(result.model)
    report = reconstruct(model, pruned, _images(96, 32), memory_mb=1, eval_images=_images(32, 32, 1))
    assert report.waves > 1
    assert report.logit_error_after < report.logit_error_before
    assert set(report.metrics()) >= {"reconstruct_seconds", "logit_error_pruned", "logit_error_reconstructed"}


# -- real data ------------------------------------------------------------------------------------------------------

DATA, WEIGHTS = SHARED / "datasets", SHARED / "models" / "cifar10"


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "cifar-10-batches-py" / "test_batch").is_file()
                    or not (WEIGHTS / "resnet20-12fca82f.th").is_file(),
                    reason=f"real CIFAR-10 or the pretrained ResNet-20 not found under {SHARED}; skipping")
def test_pretrained_resnet20_at_rate_0_3_recovers_without_fine_tuning():
    from edgeprune.config import DatasetConfig
    from edgeprune.data import BatchLoader, load_dataset
    from edgeprune.measure import evaluate
    torch.set_num_threads(2)
    data = load_dataset(DatasetConfig(root=str(DATA)))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    test = data.test.subset(0.2, seed=1)                       # 2,000 test images
    test_batches = list(BatchLoader(test, 500, mean, std))
    train = BatchLoader(data.train, 256, mean, std, shuffle=True, seed=0)
    model = create_model("resnet20", 10, pretrained=True, weights_dir=str(WEIGHTS)).eval()
    result = prune_model(model, "l1", 0.3, 32)
    recalibrated = copy.deepcopy(result.model)
    recalibrate_bn(recalibrated, train, 20)
    rebuilt = copy.deepcopy(result.model)
    report = reconstruct(model, rebuilt, train, count=1024, kept_outputs=result.kept_outputs)
    recal_acc, rebuilt_acc = evaluate(recalibrated, test_batches), evaluate(rebuilt, test_batches)
    print(f"ResNet-20 l1 0.3: recalibrated {recal_acc:.3f}, rebuilt {rebuilt_acc:.3f} ({report.summary()})")
    assert recal_acc < 0.5
    assert rebuilt_acc >= 0.65


# -- bad input ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options, culprit", [
    (dict(count=-1), "count"), (dict(count=0), "count"), (dict(count=1000), "only 8 available"),
    (dict(ridge=-1.0), "ridge"), (dict(ridge="big"), "ridge"), (dict(max_rows=0), "max_rows"),
    (dict(memory_mb=0), "memory_mb"), (dict(relu_steps=-2), "relu_steps"), (dict(batch_size=1.5), "batch_size"),
])
def test_bad_settings_are_refused_in_one_line_and_change_nothing(options, culprit):
    model = tiny_models.tiny_cnn().eval()
    pruned = prune_model(model, "l1", 0.5, 32).model
    before = {k: v.clone() for k, v in pruned.state_dict().items()}
    with pytest.raises(EdgepruneError) as e:
        reconstruct(model, pruned, _images(8, 32), **options)
    assert culprit in str(e.value) and "\n" not in str(e.value)
    assert all(torch.equal(before[k], v) for k, v in pruned.state_dict().items())


def test_no_images_and_wrong_images_are_refused():
    model = tiny_models.tiny_cnn().eval()
    pruned = prune_model(model, "l1", 0.5, 32).model
    for images in ([], torch.zeros(0, 3, 32, 32), torch.zeros(4, 3, 32, 32, dtype=torch.uint8), ["not a tensor"]):
        with pytest.raises(EdgepruneError, match="reconstruct: "):
            reconstruct(model, pruned, images)


def test_a_singular_system_never_crashes():
    """Constant images make every layer's inputs rank-deficient; plain least squares
    (ridge 0) is then singular: it is regularised, not a crash."""
    model = _lively(tiny_models.tiny_cnn(), 32)
    pruned = copy.deepcopy(prune_model(model, "l1", 0.5, 32).model)
    report = reconstruct(model, pruned, torch.ones(16, 3, 32, 32), ridge=0.0)
    assert not report.skipped
    assert all(torch.isfinite(p).all() for p in pruned.parameters())


def test_a_failing_solve_keeps_the_pruned_weights_and_names_the_layer():
    model = _lively(tiny_models.tiny_cnn(), 32)
    pruned = copy.deepcopy(prune_model(model, "l1", 0.5, 32).model)
    x = _images(16, 32)
    x[3, 0, 5, 5] = float("nan")
    before = pruned[3].weight.clone()
    report = reconstruct(model, pruned, x, eval_images=_images(8, 32, 1))
    assert "solve failed" in report.skipped.get("3", "")
    assert torch.equal(pruned[3].weight, before)


def test_after_rebuilding_training_mode_batchnorm_sees_the_rebuilt_network():
    """The rebuild folds its biases into BatchNorm running means; aligning the statistics
    keeps the eval outputs and makes a training-mode pass (batch statistics, as fine-tuning
    runs) compute what eval mode does. Without it the two differ a lot."""
    model = _lively(create_model("resnet20", 10, pretrained=False), 32)
    result = prune_model(model, "l1", 0.5, 32)
    x = _images(256, 32)

    def train_vs_eval(align):
        pruned = copy.deepcopy(result.model)
        reconstruct(model, pruned, x, kept_outputs=result.kept_outputs, align_bn=align)
        with torch.no_grad():
            evaluated = pruned.eval()(x)
            trained = pruned.train()(x)
        return ((trained - evaluated).norm() / evaluated.norm()).item(), evaluated

    aligned, out_aligned = train_vs_eval(True)
    folded, out_folded = train_vs_eval(False)
    assert torch.allclose(out_aligned, out_folded, rtol=1e-4, atol=1e-4)   # the same function in eval mode
    assert aligned < 0.05 and aligned < folded / 3, (aligned, folded)


def test_a_layer_wider_than_the_bound_is_left_as_pruned_and_named():
    """A classifier reading a flattened map (VGG: 25,088 inputs) would need gigabytes of
    normal equations: over `max_inputs` it keeps its pruned weights, and the rest is rebuilt."""
    model = _lively(tiny_models.tiny_cnn(), 32)
    pruned = copy.deepcopy(prune_model(model, "l1", 0.5, 32).model)
    wide = {n: m.weight[0].numel() for n, m in pruned.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    bound = sorted(set(wide.values()))[-2]          # the widest layer(s) go over it
    over = [n for n, k in wide.items() if k > bound]
    before = {n: dict(pruned.named_modules())[n].weight.clone() for n in over}
    report = reconstruct(model, pruned, _images(32, 32), max_inputs=bound)
    assert over and all("over the solver's bound" in report.skipped[n] for n in over)
    assert all(torch.equal(dict(pruned.named_modules())[n].weight, before[n]) for n in over)
    assert report.rebuilt and not set(over) & set(report.rebuilt)


def test_int8_variants_of_a_rebuilt_trial_quantize_the_rebuilt_model(tiny_cifar, tmp_path):
    """The recovery stage rebuilds the pruned layers in place (their biases go to BatchNorm's
    running means): int8, accuracy-controlled int8 and (with its extra) QAT rows are made from
    that model, and `deploy` of an int8 row rebuilds it again."""
    quantize = ["none", "int8", {"int8": {"max_drop": 1}}]
    if all(importlib.util.find_spec(m) for m in ("torchao", "onnxscript")):
        quantize.append({"qat": {"steps": 2}})
    out = tmp_path / "run"
    cfg = sweep_config(tiny_cifar, out, models=[{"name": "tiny_models:tiny_cnn", "pretrained": False}],
                       baseline=False, quantize=quantize, prune={"reconstruct": 128},
                       deploy={"calibration_images": 32})
    cfg["measure"]["latency"] = ["onnxruntime"]
    run_sweep(load_config(cfg))
    df = load_results(out)
    assert (df["status"] == "done").all(), df["error"].tolist()
    fp32, variants = df.iloc[0], df.iloc[1:]
    assert fp32["quantize"] == "none" and fp32["reconstruct_images"] == 128 and fp32["reconstruct_layers"] > 0
    assert fp32["logit_error_reconstructed"] < fp32["logit_error_pruned"]
    assert len(variants) == len(quantize) - 1 and (variants["fp32_trial_id"] == fp32["trial_id"]).all()
    assert (variants["accuracy_fp32"] == fp32["accuracy"]).all() and variants["accuracy"].between(0, 1).all()
    assert (variants["reconstruct_layers"] == fp32["reconstruct_layers"]).all()     # the twin's path, inherited
    assert (variants["latency_onnxruntime_ms"] > 0).all() and variants["int8_vs_fp32"].notna().all()
    controlled = variants[variants["quantize"] == "int8(max_drop=1.0)"].iloc[0]
    assert controlled["held_out_images"] > 0 and controlled["int8_max_drop"] == 1
    # deploy runs the trial again (pruning, rebuild, fine-tuning) to get the model its int8 file is made from
    plain = variants[variants["quantize"] == "int8"].iloc[0]
    assert main(["deploy", str(out), plain["trial_id"][:8], "-o", str(tmp_path / "release")]) == 0
    manifest = json.loads((tmp_path / "release" / "deploy.json").read_text())
    assert abs(manifest["int8_accuracy_onnxruntime"] - plain["accuracy"]) <= 0.02
