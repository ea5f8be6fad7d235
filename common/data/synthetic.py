"""Synthetic CIFAR in the official on-disk format, for tests and offline demos.

Each class gets a fixed random low-frequency colour pattern; every image is that
pattern, randomly shifted, with per-image brightness change and pixel noise, so a
small network learns the classes in an epoch or two but not instantly.

    python -m common.data.synthetic --dataset cifar100 --out data --train-per-class 50
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..cli import ArgumentParser
from .cifar import LAYOUTS
from .class_names import (CIFAR10_CLASSES, CIFAR100_CLASSES, CIFAR100_COARSE_CLASSES,
                          CIFAR100_COARSE_OF_FINE)

FULL_SIZE = {"cifar10": (5000, 1000), "cifar100": (500, 100)}  # train / test images per class


def class_prototypes(num_classes: int, seed: int) -> np.ndarray:
    """One 32x32x3 float pattern per class: a random 4x4 colour grid, upsampled."""
    rng = np.random.default_rng(seed)
    grid = rng.uniform(40, 215, size=(num_classes, 4, 4, 3))
    return grid.repeat(8, axis=1).repeat(8, axis=2)


def synthetic_images(labels: np.ndarray, prototypes: np.ndarray, rng) -> np.ndarray:
    n = len(labels)
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for start in range(0, n, 5000):  # chunks keep the float buffer small
        y = labels[start:start + 5000]
        shift = rng.integers(-3, 4, size=2)
        base = np.roll(prototypes[y], shift=tuple(shift), axis=(1, 2))
        gain = rng.uniform(0.8, 1.2, size=(len(y), 1, 1, 1))
        noise = rng.normal(0, 30, size=base.shape)
        images[start:start + 5000] = np.clip(base * gain + noise, 0, 255).astype(np.uint8)
    return images


def _batch_dict(name, images, labels, batch_label):
    layout = LAYOUTS[name]
    entry = {
        "batch_label": batch_label,
        layout.label_key: [int(v) for v in labels],
        "data": images.transpose(0, 3, 1, 2).reshape(len(images), -1),
        "filenames": [f"synthetic_{i:05d}.png" for i in range(len(images))],
    }
    if name == "cifar100":
        entry["coarse_labels"] = [CIFAR100_COARSE_OF_FINE[int(v)] for v in labels]
    return entry


def _dump(obj, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


def write_synthetic_cifar(name: str, out, train_per_class: int | None = None,
                          test_per_class: int | None = None, seed: int = 0) -> Path:
    """Write ``out/<official folder>/`` and return that folder."""
    layout = LAYOUTS[name]
    full_train, full_test = FULL_SIZE[name]
    train_per_class = full_train if train_per_class is None else train_per_class
    test_per_class = full_test if test_per_class is None else test_per_class
    folder = Path(out) / layout.folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    prototypes = class_prototypes(layout.num_classes, seed)

    def make(per_class):
        labels = rng.permutation(np.repeat(np.arange(layout.num_classes), per_class))
        return synthetic_images(labels, prototypes, rng), labels

    train_x, train_y = make(train_per_class)
    test_x, test_y = make(test_per_class)
    if name == "cifar10":
        chunks = np.array_split(np.arange(len(train_y)), len(layout.train_files))
        for i, (fname, idx) in enumerate(zip(layout.train_files, chunks), 1):
            _dump(_batch_dict(name, train_x[idx], train_y[idx], f"training batch {i} of 5"), folder / fname)
        _dump(_batch_dict(name, test_x, test_y, "testing batch 1 of 1"), folder / "test_batch")
        _dump({"num_cases_per_batch": len(chunks[0]), "label_names": list(CIFAR10_CLASSES),
               "num_vis": 3072}, folder / layout.meta_file)
    else:
        _dump(_batch_dict(name, train_x, train_y, "training batch 1 of 1"), folder / "train")
        _dump(_batch_dict(name, test_x, test_y, "testing batch 1 of 1"), folder / "test")
        _dump({"fine_label_names": list(CIFAR100_CLASSES),
               "coarse_label_names": list(CIFAR100_COARSE_CLASSES)}, folder / layout.meta_file)
    (folder / "SYNTHETIC").write_text(
        f"synthetic {name}: {train_per_class} train / {test_per_class} test images per class, seed {seed}\n")
    return folder


def is_synthetic(name: str, root) -> bool:
    return (Path(root) / LAYOUTS[name].folder / "SYNTHETIC").exists()


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(LAYOUTS), required=True)
    parser.add_argument("--out", required=True, help="folder that will hold the official sub-folder")
    parser.add_argument("--train-per-class", type=int, default=None, help="default: the real dataset's")
    parser.add_argument("--test-per-class", type=int, default=None, help="default: the real dataset's")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder = write_synthetic_cifar(args.dataset, args.out, args.train_per_class, args.test_per_class, args.seed)
    print(f"wrote synthetic {args.dataset} to {folder}")


if __name__ == "__main__":
    main()
