"""Fine-tuning paths: streamed ImageFolder (the textbook loader), bf16 autocast,
device selection."""
import pytest
import torch
from PIL import Image

from edgeprune import load_config, load_results, run_sweep
from edgeprune.config import DatasetConfig, FinetuneConfig
from edgeprune.data import BatchLoader, StreamingLoader, load_dataset, make_loader
from edgeprune.errors import EdgepruneError
from edgeprune.models import create_model
from edgeprune.sweep.context import resolve_device
from edgeprune.train import finetune

from conftest import sweep_config


@pytest.fixture()
def image_tree(tmp_path):
    colors = {"red": (200, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 200)}
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 12), ("val", 6)):
        for cls, rgb in colors.items():
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                noise = torch.randint(0, 60, (20, 24, 3), generator=g).numpy().astype("uint8")
                Image.fromarray((noise + torch.tensor(rgb).numpy() * 0.7).clip(0, 255).astype("uint8")).save(
                    folder / f"{i}.png")
    return tmp_path


def test_streamed_and_in_memory_imagefolder_serve_the_same_shapes(image_tree):
    cfg = DatasetConfig(name="imagefolder", root=str(image_tree), image_size=16, in_memory=False)
    streamed = load_dataset(cfg)
    assert len(streamed.train) == 36 and streamed.num_classes == 3
    loader = make_loader(streamed.train, 8, streamed.train.mean, streamed.train.std, shuffle=True, augment=True)
    assert isinstance(loader, StreamingLoader)
    x, y = next(iter(loader))
    assert x.shape == (8, 3, 16, 16) and y.dtype == torch.long
    memory = load_dataset(cfg.model_copy(update={"in_memory": True}))
    assert isinstance(make_loader(memory.train, 8, memory.train.mean, memory.train.std), BatchLoader)
    assert len(load_dataset(cfg.model_copy(update={"train_fraction": 0.5})).train) == 18


def test_sweep_on_a_streamed_imagefolder(image_tree, tmp_path):
    cfg = sweep_config(image_tree, tmp_path / "run", models=[{"name": "tiny_models:tiny_cnn", "pretrained": False}],
                       baseline=False)
    cfg["dataset"] = {"name": "imagefolder", "root": str(image_tree), "image_size": 16, "in_memory": False}
    run_sweep(load_config(cfg))
    df = load_results(tmp_path / "run")
    assert (df["status"] == "done").all() and df.loc[0, "input_size"] == 16


def test_bf16_autocast_trains(tiny_cifar):
    d = load_dataset(DatasetConfig(root=str(tiny_cifar)))
    loader = BatchLoader(d.train, 32, d.train.mean, d.train.std, shuffle=True)
    model = create_model("tiny_models:tiny_cnn", 10, pretrained=False)
    result = finetune(model, loader, FinetuneConfig(epochs=2, lr=0.05, amp="bf16"))
    assert result.steps == 2 * len(loader) and result.losses[-1] < result.losses[0]
    assert next(model.parameters()).dtype == torch.float32     # autocast keeps fp32 master weights


def test_device_selection():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(EdgepruneError, match="no CUDA GPU"):
            resolve_device("cuda")
