"""Datasets and batches."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgeprune.config import DatasetConfig
from edgeprune.data import BatchLoader, load_dataset, random_crop_flip, resolve_normalization
from edgeprune.errors import ConfigError



def test_cifar_reader_and_fractions(tiny_cifar):
    d = load_dataset(DatasetConfig(root=str(tiny_cifar)))
    assert d.train.images.shape == (200, 3, 32, 32) and d.test.images.dtype == torch.uint8
    assert d.num_classes == 10 and d.train.classes[0] == "class0"
    half = load_dataset(DatasetConfig(root=str(tiny_cifar), train_fraction=0.5, test_fraction=0.2))
    assert len(half.train) == 100 and len(half.test) == 20
    again = load_dataset(DatasetConfig(root=str(tiny_cifar), train_fraction=0.5))
    assert torch.equal(half.train.labels, again.train.labels)  # the same subset every time


def test_cifar100_layout(tmp_path):
    import pickle
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("test", 10)):
        with open(base / split, "wb") as f:
            pickle.dump({"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                         "fine_labels": rng.integers(0, 100, n).tolist()}, f)
    with open(base / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f)
    d = load_dataset(DatasetConfig(name="cifar100", root=str(tmp_path)))
    assert d.num_classes == 100 and len(d.train) == 20


def test_imagefolder(tmp_path):
    for split in ("train", "val"):
        for cls, color in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (40 + i, 30), color).save(folder / f"{i}.png")
    d = load_dataset(DatasetConfig(name="imagefolder", root=str(tmp_path), image_size=24))
    assert d.train.images.shape == (6, 3, 24, 24) and d.train.classes == ["cat", "dog"]
    assert d.test.labels.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ConfigError, match="not an ImageFolder tree"):
        load_dataset(DatasetConfig(name="imagefolder", root=str(tmp_path / "train")))


def test_batches_are_normalised_augmented_and_seeded(tiny_cifar):
    d = load_dataset(DatasetConfig(root=str(tiny_cifar)))
    plain = BatchLoader(d.train, 64, d.train.mean, d.train.std)
    x, y = next(iter(plain))
    assert x.shape == (64, 3, 32, 32) and abs(float(x.mean())) < 0.5 and len(plain) == 4
    big = BatchLoader(d.train, 64, d.train.mean, d.train.std, image_size=64, channels_last=True)
    xb, _ = next(iter(big))
    assert xb.shape == (64, 3, 64, 64) and xb.is_contiguous(memory_format=torch.channels_last)
    a = [b[1] for b in BatchLoader(d.train, 64, d.train.mean, d.train.std, shuffle=True, augment=True, seed=1)]
    b = [b[1] for b in BatchLoader(d.train, 64, d.train.mean, d.train.std, shuffle=True, augment=True, seed=1)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_random_crop_flip_moves_pixels_within_the_border():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    # every non-zero output value comes from the same image and channel
    for i in range(2):
        for c in range(3):
            vals = set(out[i, c][out[i, c] != 0].tolist())
            assert vals <= set(x[i, c].flatten().tolist())


def test_normalization_choice(tiny_cifar):
    d = load_dataset(DatasetConfig(root=str(tiny_cifar)))
    pretrained = {"weights": "pretrained", "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    assert resolve_normalization("auto", pretrained, d.train)[0] == (0.485, 0.456, 0.406)
    assert resolve_normalization("auto", {**pretrained, "weights": "random"}, d.train)[0] == d.train.mean
    assert resolve_normalization("imagenet", {}, d.train)[1] == (0.229, 0.224, 0.225)
    assert resolve_normalization(([0.5] * 3, [0.25] * 3), {}, d.train) == ((0.5,) * 3, (0.25,) * 3)


def test_a_failed_download_leaves_no_folder_behind(tmp_path, monkeypatch):
    """Offline, the download fails in one line and the data folder it would have filled is
    not left behind (a start that fails writes nothing); a folder the user had stays."""
    import torchvision

    from edgeprune.data.cifar import download
    from edgeprune.errors import OfflineError

    def offline(root, train, download):
        Path(root).mkdir(parents=True, exist_ok=True)          # what torchvision does before it fetches
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(OfflineError, match="--data-dir DIR"):
        download("cifar10", str(tmp_path / "data"))
    assert not (tmp_path / "data").exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(OfflineError):
        download("cifar10", str(tmp_path / "mine"))
    assert (tmp_path / "mine").is_dir()
