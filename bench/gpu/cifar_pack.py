"""A CIFAR-10 subset small enough to carry to the GPU machine, losslessly.

CIFAR-10 is 178 MB of raw pixels; the device takes at most 64 MiB with the tree. Raw
pixels compress to ~75 % with xz; predicting each pixel from its left and upper
neighbours (residual = x - left - up + upleft, a 2-D difference) after taking green
out of red and blue brings that to ~55 %. Both steps undo with integer sums, so
`unpack` rebuilds the exact pixels (checked against a SHA-256 of the original bytes)
and writes them in torchvision's layout (data_batch_1..5, test_batch, batches.meta),
which edgeprune's cifar10 loader reads unchanged. Only the standard library and numpy.

    python bench/gpu/cifar_pack.py pack CIFAR_DIR OUT.npz.xz --train 15000 --test 5000   (here)
    python bench/gpu/cifar_pack.py unpack OUT.npz.xz DATA_DIR                           (there)
"""
from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import pickle
import sys
from pathlib import Path

import numpy as np

FOLDER = "cifar-10-batches-py"


def _read_batches(base: Path, names: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` images (N x 3 x 32 x 32 uint8) and labels of these batches, in order."""
    xs, ys = [], []
    for name in names:
        with open(base / name, "rb") as f:
            d = pickle.load(f, encoding="latin1")     # the maintainer's own copy, not carried input
        xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d["labels"], dtype=np.uint8))
        if sum(len(y) for y in ys) >= n:
            break
    x, y = np.concatenate(xs)[:n], np.concatenate(ys)[:n]
    if len(y) < n:
        raise SystemExit(f"{base} holds {len(y)} images in {names}, fewer than the {n} asked for")
    return x, y


def encode(x: np.ndarray) -> np.ndarray:
    """Residuals (uint8, wrapping) of N x 3 x 32 x 32 pixels."""
    c = x.copy()
    c[:, 0] -= x[:, 1]                                # red - green, wrapping in uint8
    c[:, 2] -= x[:, 1]                                # blue - green
    c[..., 1:] = c[..., 1:] - c[..., :-1]             # minus the left neighbour
    c[..., 1:, :] = c[..., 1:, :] - c[..., :-1, :]    # minus the upper row's differences
    return np.ascontiguousarray(c.transpose(1, 0, 2, 3))   # plane-major compresses a little better


def decode(r: np.ndarray) -> np.ndarray:
    c = np.ascontiguousarray(r.transpose(1, 0, 2, 3))
    c = np.cumsum(c, axis=2, dtype=np.uint8)
    c = np.cumsum(c, axis=3, dtype=np.uint8)
    c[:, 0] += c[:, 1]
    c[:, 2] += c[:, 1]
    return c


def pack(cifar: Path, out: Path, n_train: int, n_test: int) -> dict:
    base = cifar / FOLDER if (cifar / FOLDER).is_dir() else cifar
    if not (base / "test_batch").is_file():
        raise SystemExit(f"{base} holds no CIFAR-10 (expected {FOLDER}/ with data_batch_1..5 and test_batch)")
    train = _read_batches(base, [f"data_batch_{i}" for i in range(1, 6)], n_train)
    test = _read_batches(base, ["test_batch"], n_test)
    with open(base / "batches.meta", "rb") as f:
        names = pickle.load(f, encoding="latin1")["label_names"]
    digest = hashlib.sha256(train[0].tobytes() + test[0].tobytes()).hexdigest()
    buf = io.BytesIO()
    np.savez(buf, train_x=encode(train[0]), train_y=train[1], test_x=encode(test[0]), test_y=test[1],
             label_names=np.array(names), sha256=np.array(digest))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(lzma.compress(buf.getvalue(), preset=6))
    raw = train[0].nbytes + test[0].nbytes
    return {"train": n_train, "test": n_test, "raw_bytes": raw, "packed_bytes": out.stat().st_size,
            "ratio": round(out.stat().st_size / raw, 3)}


def unpack(packed: Path, root: Path) -> Path:
    """Writes ROOT/cifar-10-batches-py/ from the packed subset; returns that folder."""
    with np.load(io.BytesIO(lzma.decompress(packed.read_bytes()))) as z:
        train_x, test_x = decode(z["train_x"]), decode(z["test_x"])
        train_y, test_y = z["train_y"].astype(int), z["test_y"].astype(int)
        names, digest = [str(n) for n in z["label_names"]], str(z["sha256"])
    if hashlib.sha256(train_x.tobytes() + test_x.tobytes()).hexdigest() != digest:
        raise SystemExit(f"{packed}: the unpacked pixels do not match the packed checksum; run prepare again")
    base = root / FOLDER
    base.mkdir(parents=True, exist_ok=True)

    def write(name: str, x: np.ndarray, y: np.ndarray) -> None:
        with open(base / name, "wb") as f:
            pickle.dump({"data": x.reshape(len(x), 3072), "labels": y.tolist(), "batch_label": name}, f)

    # edgeprune's loader wants all five train batches: the subset is cut into five
    for i, (x, y) in enumerate(zip(np.array_split(train_x, 5), np.array_split(train_y, 5)), start=1):
        write(f"data_batch_{i}", x, y)
    write("test_batch", test_x, test_y)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": len(train_x) // 5, "num_vis": 3072}, f)
    return base


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("cifar", type=Path)
    a.add_argument("out", type=Path)
    a.add_argument("--train", type=int, default=15_000)
    a.add_argument("--test", type=int, default=5_000)
    b = sub.add_parser("unpack")
    b.add_argument("packed", type=Path)
    b.add_argument("root", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "pack":
        print(pack(args.cifar, args.out, args.train, args.test))
    else:
        print(unpack(args.packed, args.root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
