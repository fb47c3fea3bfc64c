"""Models: registry, checkpoints, heads, user factories, offline weights."""
import urllib.error

import pytest
import torch

from edgeprune.errors import CheckpointError, EdgepruneError, OfflineError
from edgeprune.models import classifier_name, create_model, list_models, model_entry

from conftest import SHARED


def test_registry_covers_cifar_and_torchvision_models():
    names = list_models()
    for n in ["resnet20", "resnet32", "resnet44", "resnet56", "cifar_vgg16", "googlenet", "efficientnet_b0",
              "densenet121", "vgg16", "mobilenet_v2", "alexnet", "resnet50"]:
        assert n in names
    assert model_entry("alexnet").min_input_size == 63
    assert model_entry("resnet20").input_size == 32


@pytest.mark.parametrize("name, params", [("resnet20", 269_722), ("resnet32", 464_154), ("resnet56", 853_018)])
def test_cifar_resnets_have_the_published_size(name, params):
    model = create_model(name, 10, pretrained=False)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_checkpoint_roundtrip_with_dataparallel_prefix_and_wrapper(tmp_path):
    src = create_model("resnet20", 10, pretrained=False)
    path = tmp_path / "ckpt.th"
    torch.save({"best_prec1": 90.0, "state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    model = create_model("resnet20", 10, checkpoint=str(path)).eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model(x), src.eval()(x))
    assert model.edgeprune_meta["weights"].startswith("checkpoint:")
    assert not model.edgeprune_meta["head_replaced"]


def test_checkpoint_with_other_class_count_gets_a_new_head(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save(create_model("resnet20", 10, pretrained=False).state_dict(), path)
    model = create_model("resnet20", 100, checkpoint=str(path))
    assert model.edgeprune_meta["head_replaced"] and model.linear.out_features == 100


def test_mismatched_checkpoint_names_the_file_and_keys(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(create_model("resnet32", 10, pretrained=False).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"other.pt.*unexpected \['layer1.3"):
        create_model("resnet20", 10, checkpoint=str(path))


def test_corrupt_and_missing_checkpoints(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="bad.pt.*cannot be read"):
        create_model("resnet20", 10, checkpoint=str(bad))
    with pytest.raises(CheckpointError, match="not found"):
        create_model("resnet20", 10, checkpoint=str(tmp_path / "missing.pt"))


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": Evil()}}, path)
    with pytest.raises(CheckpointError, match="cannot be read"):
        create_model("resnet20", 10, checkpoint=str(path))


def test_offline_pretrained_weights_give_a_clear_error(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))       # an empty cache
    for name in ("resnet20", "mobilenet_v2"):
        with pytest.raises(OfflineError, match=r"--weights-dir DIR.*checkpoint.*pretrained: false"):
            create_model(name, 10, pretrained=True)


def test_no_pretrained_weights_for_cifar_vgg():
    with pytest.raises(EdgepruneError, match="no pretrained weights"):
        create_model("cifar_vgg16", 10, pretrained=True)


def test_user_factory_and_head_replacement():
    model = create_model("tiny_models:tiny_cnn", 7, pretrained=False)
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 7)
    assert model.edgeprune_meta["family"] == "custom"
    with pytest.raises(EdgepruneError, match="not an nn.Module"):
        create_model("tiny_models:not_a_model", 10, pretrained=False)
    with pytest.raises(EdgepruneError, match="has no callable 'nothing'"):
        create_model("tiny_models:nothing", 10, pretrained=False)


def test_googlenet_has_no_aux_heads_and_classifier_is_found():
    model = create_model("googlenet", 10, pretrained=False)
    assert model.aux1 is None and model.aux2 is None
    assert classifier_name(model) == "fc"
    assert classifier_name(create_model("mobilenet_v2", 10, pretrained=False)) == "classifier.1"
    assert classifier_name(create_model("squeezenet1_0", 10, pretrained=False)) == "classifier.1"


@pytest.mark.skipif(not (SHARED / "models/cifar10/resnet20-12fca82f.th").is_file(),
                    reason="../shared/models/cifar10 not present")
def test_shared_pretrained_resnet20_loads():
    model = create_model("resnet20", 10, checkpoint=str(SHARED / "models/cifar10/resnet20-12fca82f.th"))
    assert model.edgeprune_meta["mean"] == (0.485, 0.456, 0.406)
