"""Reading CIFAR-10 / CIFAR-100 from the official "python version" pickles.

The files are read with a restricted unpickler: only plain containers, bytes,
numbers, strings and the three numpy names an ndarray pickle needs are allowed,
so a tampered file cannot run code.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CifarLayout:
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    train_per_class: int      # the official sets are balanced: what plans count without the files
    test_per_class: int


LAYOUTS = {
    "cifar10": CifarLayout(
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key="labels",
        names_key="label_names",
        num_classes=10,
        train_per_class=5000,
        test_per_class=1000,
    ),
    "cifar100": CifarLayout(
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        num_classes=100,
        train_per_class=500,
        test_per_class=100,
    ),
}


def default_data_root() -> Path:
    """`$LTREPRO_DATA` if set, else `./data`."""
    return Path(os.environ.get("LTREPRO_DATA", "data"))


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves no global except what an ndarray pickle needs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: CIFAR files hold only "
                "containers, bytes, numbers, strings and uint8 arrays")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return getattr(np, name)


def safe_load_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        obj = RestrictedUnpickler(f, encoding="latin1").load()
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError(f"{path}: expected a dict, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


class CifarError(Exception):
    """CIFAR files missing or unusable; the message names the path and the fix."""


class CifarNotFoundError(CifarError, FileNotFoundError):
    pass


class CifarFormatError(CifarError, ValueError):
    """A file is there but is not a usable CIFAR file (truncated, tampered, wrong shape or labels)."""


def _missing_message(name: str, folder: Path, files: list[str], reason: str) -> str:
    layout = LAYOUTS[name]
    return (f"{name}: {reason} in {folder} (missing or unreadable: {', '.join(files)}). Fix: point LTREPRO_DATA "
            f"(or --data) at the folder that holds '{layout.folder}/', fetch it there with `python -m common.data.fetch "
            f"--root DIR {name}` (needs network), or write synthetic stand-ins with `python -m common.data.synthetic "
            f"--dataset {name} --out DIR`.")


def _download(name: str, root: Path) -> None:
    import torchvision

    cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[name]
    for train in (True, False):
        cls(root=str(root), train=train, download=True)


def missing_files(name: str, root, train: bool | None = None) -> list[str]:
    """The official files of dataset ``name`` that ``root`` lacks: the training or test split's
    (``train`` True / False) or both (None), and the metadata file; none where a pack
    (:mod:`common.data.pack`) stands in for them."""
    layout = LAYOUTS[name]
    if pack_path(name, root).is_file():
        return []
    splits = {True: layout.train_files, False: layout.test_files}
    files = [*(f for t in ((True, False) if train is None else (train,)) for f in splits[t]), layout.meta_file]
    return [f for f in files if not (Path(root) / layout.folder / f).is_file()]


def load_cifar(name: str, root=None, train: bool = True, download: bool = False):
    """Load CIFAR as ``(images uint8 N x 32 x 32 x 3, labels int64 N, class names)``.

    ``root`` is the folder that holds ``cifar-10-batches-py/`` or ``cifar-100-python/``
    (default: :func:`default_data_root`), or a pack of them (:mod:`common.data.pack`), whose
    training images come as :class:`PackedImages`.
    """
    if name not in LAYOUTS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(LAYOUTS)}")
    layout = LAYOUTS[name]
    root = Path(root) if root is not None else default_data_root()
    folder = root / layout.folder
    if uses_pack(name, root):
        return read_pack(pack_path(name, root), train)
    missing = missing_files(name, root, train)
    if missing and download:
        _download(name, root)
        missing = missing_files(name, root, train)
    if missing:
        raise CifarNotFoundError(_missing_message(name, folder, missing, "files not found"))

    classes = [str(c) for c in _read(folder / layout.meta_file, lambda d: d[layout.names_key])]
    if len(classes) != layout.num_classes:
        raise CifarFormatError(f"{folder / layout.meta_file}: {len(classes)} class names, {name} has {layout.num_classes}")
    images, labels = [], []
    for fname in layout.train_files if train else layout.test_files:
        x, y = _read(folder / fname, lambda d: _batch(d, layout))
        images.append(x)
        labels.append(y)
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), classes


def pack_path(name: str, root) -> Path:
    """Where a pack of dataset ``name`` (:mod:`common.data.pack`) lies in data folder ``root``."""
    return Path(root) / f"{LAYOUTS[name].folder}.pack.npz"


def uses_pack(name: str, root) -> bool:
    """A pack stands in for the official files: it is there and they are not all there."""
    layout = LAYOUTS[name]
    official = (*layout.train_files, *layout.test_files, layout.meta_file)
    return pack_path(name, root).is_file() and not all((Path(root) / layout.folder / f).is_file() for f in official)


class PackedImages:
    """The training images a pack holds, addressed by their position in the official training
    set (``len`` is the official count). Indexing with positions the pack holds gives the images;
    a position it does not hold raises :class:`CifarNotFoundError` naming the pack."""

    def __init__(self, images: np.ndarray, positions: np.ndarray, total: int, source: Path):
        self.images, self.source = images, source
        self.slot = np.full(total, -1, dtype=np.int64)
        self.slot[positions] = np.arange(len(positions))

    def __len__(self) -> int:
        return len(self.slot)

    @property
    def shape(self):
        return (len(self), *self.images.shape[1:])

    def __getitem__(self, index):
        slots = self.slot[np.asarray(index)]
        if (slots < 0).any():
            raise CifarNotFoundError(
                f"{self.source} holds {len(self.images)} of the {len(self)} training images, not all those this run "
                f"trains on: pack its imbalance factor too (python -m common.data.pack --help) or use the official files")
        return self.images[slots]


def row_deltas(images: np.ndarray) -> np.ndarray:
    """uint8 ``N x H x W x C`` images as differences along each row (wrapping mod 256): natural
    images compress about a fifth smaller so. :func:`from_row_deltas` undoes it exactly."""
    deltas = images.copy()
    deltas[:, :, 1:] = np.diff(images, axis=2)
    return deltas


def from_row_deltas(deltas: np.ndarray) -> np.ndarray:
    return np.cumsum(deltas, axis=2, dtype=np.uint8)


def read_pack(path: Path, train: bool):
    """``(images, labels, classes)`` as :func:`load_cifar` returns them; the training images as
    :class:`PackedImages`."""
    try:
        with np.load(path, allow_pickle=False) as f:
            classes = [str(c) for c in f["classes"]]
            if not train:
                return from_row_deltas(f["test_images"]), f["test_labels"].astype(np.int64), classes
            labels = f["train_labels"].astype(np.int64)
            return (PackedImages(from_row_deltas(f["train_images"]), f["train_positions"], len(labels), path),
                    labels, classes)
    except (OSError, ValueError, KeyError) as err:
        raise CifarFormatError(f"{path} is damaged or not a pack this project wrote ({type(err).__name__}: {err}); "
                               f"write it again with python -m common.data.pack") from err


def _read(path: Path, extract):
    """``extract(entries of the pickle at path)``; any damage is a :class:`CifarFormatError` naming ``path``."""
    try:
        return extract(safe_load_pickle(path))
    except CifarFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, IndexError) as err:
        kind = f"missing entry {err}" if isinstance(err, KeyError) else f"{type(err).__name__}: {err}"
        raise CifarFormatError(f"{path} is damaged or not a CIFAR file ({kind}). Replace it with the official "
                               f"file, or write synthetic stand-ins with `python -m common.data.synthetic`.") from err


def _batch(entries: dict, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(entries["data"])
    labels = np.asarray(entries[layout.label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"'data' must be uint8 N x 3072, got {data.dtype} {data.shape}")
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{len(data)} images but labels of shape {labels.shape} and type {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise ValueError(f"labels must lie in 0..{layout.num_classes - 1}, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.int64)
