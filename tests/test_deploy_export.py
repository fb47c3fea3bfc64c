"""Verified export: ONNX (onnxruntime) and TorchScript parity on the seed's model
families, pruned ones included, and loud failure when the file is wrong."""
import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn

from edgeprune.deploy import ExportError, export_onnx, export_torchscript, onnx_predict
from edgeprune.models import create_model
from edgeprune.prune import prune_model

import tiny_models




def _images(n=6, size=32, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family, build", [
    ("residual (ChannelMapShortcut)", lambda: create_model("resnet20", 10, pretrained=False)),
    ("depthwise", lambda: tiny_models.tiny_mobilenet(10)),
    ("concatenating", lambda: tiny_models.tiny_densenet(10)),
    ("squeeze-excite", lambda: tiny_models.tiny_efficientnet(10)),
])
def test_onnx_parity_of_pruned_models(family, build, tmp_path):
    model = build().eval()
    pruned = prune_model(model, "l1", 0.5, 32).model
    x = _images()
    for tag, m, dynamic in [("base", model, False), ("pruned", pruned, True)]:
        report = export_onnx(m, tmp_path / f"{tag}.onnx", 32, check_inputs=x, dynamic_batch=dynamic)
        assert report.max_abs_diff <= 1e-4 and report.checked == 6 and report.real_images
        assert report.top1_agreement == 1.0 and report.size_bytes == report.path.stat().st_size
    # the pruned file is smaller and runs at another batch size when the batch axis is dynamic
    assert report.size_bytes < (tmp_path / "base.onnx").stat().st_size
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"
    with torch.no_grad():
        np.testing.assert_allclose(onnx_predict(session, x[:3].numpy()), pruned(x[:3]).numpy(), atol=1e-4)


def test_static_batch_export_checks_in_chunks(tmp_path):
    model = create_model("resnet20", 10, pretrained=False).eval()
    report = export_onnx(model, tmp_path / "m.onnx", 32, check_inputs=[(_images(5), None), (_images(4, seed=1), None)])
    assert report.checked == 9 and report.input_shape == [1, 3, 32, 32] and not report.dynamic_batch
    assert report.opset == 17 and report.exporter == "torchscript"


def test_torchscript_parity(tmp_path):
    pruned = prune_model(create_model("resnet20", 10, pretrained=False).eval(), "fpgm", 0.3, 32).model
    report = export_torchscript(pruned, tmp_path / "m.pt", 32, check_inputs=_images())
    assert report.max_abs_diff <= 1e-4 and report.format == "torchscript"
    loaded = torch.jit.load(str(report.path))
    with torch.no_grad():
        torch.testing.assert_close(loaded(_images(2)), pruned(_images(2)), atol=1e-4, rtol=0)


class DataDependent(nn.Module):
    """Traces one branch only: the file computes something else than the model."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        y = self.fc(x.flatten(1))
        return y * 2 if x.sum() > 0 else y * 3


def test_a_file_that_computes_something_else_fails_loudly(tmp_path):
    x = _images(4, size=8).abs() + 0.1          # positive: eager takes the other branch than the trace
    with pytest.raises(ExportError, match="parity check failed.*max"):
        export_onnx(DataDependent(), tmp_path / "bad.onnx", 8, check_inputs=x)
    assert not (tmp_path / "bad.onnx").exists() and (tmp_path / "bad.failed.onnx").exists()
    with pytest.raises(ExportError, match="parity check failed"):
        export_torchscript(DataDependent(), tmp_path / "bad.pt", 8, check_inputs=x)


def test_export_leaves_the_model_in_its_mode_and_reports_random_inputs(tmp_path):
    model = tiny_models.tiny_cnn(10).train()
    report = export_onnx(model, tmp_path / "m.onnx", 16)
    assert model.training and not report.real_images and "random inputs" in report.summary()


def test_unknown_exporter_is_an_error(tmp_path):
    with pytest.raises(ExportError, match="unknown exporter"):
        export_onnx(tiny_models.tiny_cnn(10), tmp_path / "m.onnx", 16, exporter="magic")


def test_adaptive_pools_the_exporter_refuses_export_exactly(tmp_path):
    """AlexNet and VGG below 224 px pool 1x1 or 2x2 maps to 6x6 or 7x7, which torch's ONNX
    exporter refuses (output size not a factor of the input's); they are exported as the
    linear maps they compute."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=8), nn.ReLU(), nn.AdaptiveAvgPool2d((7, 7)),
                          nn.Flatten(), nn.Linear(4 * 49, 10)).eval()
    for side in (10, 18, 34):                          # 1x1, 2x2 and 4x4 maps before the pool
        report = export_onnx(model, tmp_path / f"m{side}.onnx", side, check_images=4)
        assert report.max_abs_diff < 1e-5 and report.top1_agreement == 1.0
    assert isinstance(model[2], nn.AdaptiveAvgPool2d)  # the model itself is left as it was
