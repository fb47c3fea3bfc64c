"""Distillation while fine-tuning: the loss, and steps that move the student
towards the teacher without touching the teacher."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeprune.config import FinetuneConfig
from edgeprune.train.finetune import distillation_loss, finetune

import tiny_models




class Batches:
    """The little a loader needs for finetune(): len, iteration, a generator."""

    def __init__(self, n_batches=4, batch=16, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.items = [(torch.randn(batch, 3, 16, 16, generator=g), torch.randint(0, 10, (batch,), generator=g))
                      for _ in range(n_batches)]
        self.generator = torch.Generator()

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)


def _kl(teacher, student, x, t=1.0):
    with torch.no_grad():
        return float(F.kl_div(F.log_softmax(student(x) / t, 1), F.log_softmax(teacher(x) / t, 1),
                              reduction="batchmean", log_target=True))


def test_distillation_loss_limits():
    s, t, y = torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,))
    ce = nn.CrossEntropyLoss()
    torch.testing.assert_close(distillation_loss(s, t, y, 4.0, 0.0, ce), ce(s, y))
    assert float(distillation_loss(t, t, y, 4.0, 1.0, ce)) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(s, t, y, 4.0, 1.0, ce)) > 0


def test_distillation_steps_move_the_student_towards_the_teacher():
    torch.manual_seed(0)
    teacher, student = tiny_models.tiny_cnn(10).eval(), tiny_models.tiny_cnn(10)
    with torch.no_grad():   # a confident teacher with a clear opinion
        teacher[-1].weight.mul_(5)
    frozen = copy.deepcopy(teacher.state_dict())
    held_out = torch.randn(64, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    before = _kl(teacher, student, held_out)
    cfg = FinetuneConfig(epochs=4, lr=0.05, batch_size=16, channels_last=False,
                         distill={"temperature": 2.0, "weight": 1.0})
    result = finetune(student, Batches(), cfg, teacher=teacher)
    after = _kl(teacher, student, held_out)
    assert result.distilled and result.steps == 16
    assert after < 0.5 * before, (before, after)
    for k, v in teacher.state_dict().items():     # the teacher is untouched, still in eval mode
        torch.testing.assert_close(v, frozen[k])
    assert not teacher.training
    # without a teacher the same call is plain fine-tuning
    plain = finetune(tiny_models.tiny_cnn(10), Batches(), cfg)
    assert not plain.distilled


def test_distill_config_shorthands():
    assert FinetuneConfig(distill=True).distill.temperature == 4.0
    assert FinetuneConfig(distill=False).distill is None
    assert FinetuneConfig(distill={"weight": 0.9}).distill.weight == 0.9
    with pytest.raises(ValueError):
        FinetuneConfig(distill={"weight": 1.5})
