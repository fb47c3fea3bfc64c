"""The latency model's features: MACs and output elements per class of layer. A runtime
whose time follows the activations written (not the MACs) is fitted exactly; a model
fitted before output elements were features predicts as it always did."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeprune.allocate import LatencyModel, fit_latency_model, uniform_widths
from edgeprune.allocate.cost import OUTPUTS, LatencyFeatures, full_widths
from edgeprune.allocate.latency import design, leave_one_out
from edgeprune.models import create_model
from edgeprune.prune import example_input
from edgeprune.prune.groups import channel_structure


@pytest.fixture(scope="module")
def structure():
    torch.manual_seed(0)
    return channel_structure(create_model("resnet20", 10, pretrained=False).eval(), example_input(32))


def outputs_of(structure, widths) -> float:
    f = LatencyFeatures(structure).features(widths)
    return sum(v for k, v in f.items() if k.endswith(OUTPUTS))


def test_a_runtime_paced_by_activations_is_fitted_exactly(structure):
    """Time = 0.2 + 2e-6 x output elements: halving every width halves the activations
    but quarters the MACs. Fitted on output elements too, the leave-one-out error is
    nil; fitted on MACs alone (version 1), some network is off by more than 3 %."""
    def timer(widths):
        return 0.2 + 2e-6 * outputs_of(structure, widths)

    model = fit_latency_model(structure, timer, "lab", 1, 1, "ms", 1.0, min_fraction=0.1, seed=0)
    assert max(abs(s["held_out"] / s["measured"] - 1) for s in model.samples) < 0.01
    narrow = uniform_widths(structure, 0.75)
    assert model.cost(structure).total(narrow) == pytest.approx(timer(narrow), rel=0.01)

    # the same timings fitted on MACs per class alone, as version 1 did
    features = LatencyFeatures(structure)
    rows = design(features, [s["widths"] for s in model.samples], features.kinds)
    measured = np.array([s["measured"] for s in model.samples])
    assert max(abs(leave_one_out(rows, measured) / measured - 1)) > 0.03

def test_a_model_fitted_on_macs_alone_predicts_as_it_was_fitted(structure):
    """Run folders keep their version-1 latency models (no output-element coefficients):
    read back, they predict intercept + coefficient x MACs, as when they were fitted."""
    kinds = LatencyFeatures(structure).kinds
    coefficients = {k: 1e-8 * (i + 1) for i, k in enumerate(kinds)}
    old = LatencyModel.from_json({"backend": "onnxruntime", "block": 1, "unit": "ms", "intercept": 0.1,
                                  "coefficients": coefficients, "reference_ms": 1.0, "version": 1})
    widths = uniform_widths(structure, 0.4)
    features = LatencyFeatures(structure).features(widths)
    expected = 0.1 + sum(c * features[k] for k, c in coefficients.items())
    assert old.cost(structure).total(widths) == pytest.approx(expected, rel=1e-9)
    assert old.cost(structure).total(full_widths(structure)) > old.cost(structure).total(widths)
