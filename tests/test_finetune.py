"""Fine-tuning loop."""
import math

import torch

from edgeprune.config import DatasetConfig, FinetuneConfig
from edgeprune.data import BatchLoader, load_dataset
from edgeprune.measure import evaluate
from edgeprune.models import create_model
from edgeprune.train import finetune, planned_steps, warmup_cosine


def _loader(tiny_cifar, seed=0):
    d = load_dataset(DatasetConfig(root=str(tiny_cifar)))
    return d, BatchLoader(d.train, 32, d.train.mean, d.train.std, shuffle=True, augment=True, seed=seed)


def test_learns_and_is_deterministic(tiny_cifar):
    d, loader = _loader(tiny_cifar)
    test = BatchLoader(d.test, 100, d.train.mean, d.train.std)
    cfg = FinetuneConfig(epochs=4, lr=0.05, batch_size=32, label_smoothing=0.1, warmup_epochs=0.5)
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = create_model("tiny_models:tiny_cnn", 10, pretrained=False)
        before = evaluate(model, test)
        result = finetune(model, loader, cfg, seed=7)
        runs.append((model, result))
    (m1, r1), (m2, r2) = runs
    assert r1.steps == 4 * len(loader) and math.isclose(r1.epochs, 4)
    assert r1.losses[-1] < r1.losses[0]
    assert evaluate(m1, test) > max(before, 0.3)
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


def test_max_steps_and_fractional_epochs(tiny_cifar):
    _, loader = _loader(tiny_cifar)
    assert planned_steps(FinetuneConfig(epochs=0.5), 7) == 4
    assert planned_steps(FinetuneConfig(epochs=3, max_steps=5), 7) == 5
    model = create_model("tiny_models:tiny_cnn", 10, pretrained=False)
    result = finetune(model, loader, FinetuneConfig(epochs=10, max_steps=3, optimizer="adamw", lr=1e-3))
    assert result.steps == 3 and not model.training


def test_schedule_warms_up_then_decays_to_zero():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = warmup_cosine(opt, total_steps=10, warmup_steps=2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step(); sched.step()
    assert lrs[0] == 0.5 and lrs[1] == 1.0 and lrs[-1] < 0.05 and lrs == lrs[:2] + sorted(lrs[2:], reverse=True)
