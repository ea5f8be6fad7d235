"""A kept run's backbone features, computed once and stored beside its weights.

Every decoupled stage-2 row (the seed's losses, cRT, LWS) and every post-hoc row starts from one
kept stage-1 run and needs the same pass of its frozen backbone over the same images. The first
row to need a pass stores it in ``<run>/features/``; the others load it, so all rows together
cost one pass over the training set and one over each test set. The file name hashes everything
the features depend on: the run (its ``run_id``: a re-trained run gets new files), the images,
the transform, the precision and the memory format.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch
from filelock import FileLock

from .engine import cached_features, save_atomic


def kept_run_features(run_dir: Path, run_id: str, model: torch.nn.Module, images: torch.Tensor, transform: Callable,
                      train_cfg, amp: bool) -> torch.Tensor:
    """``model``'s backbone features of ``images`` (evaluation mode, no augmentation), where
    ``model``'s backbone is the kept run ``run_dir``'s, unchanged; ``train_cfg`` gives the input
    size, normalisation and batch size that ``transform`` applies."""
    key = {"augment": "none", "size": train_cfg.size, "normalize": train_cfg.normalize,
           "channels_last": getattr(model, "_channels_last", False)}
    path = feature_file(run_dir, run_id, images, key, amp, train_cfg.eval_batch_size)
    return stored_features(path, model, images, transform, train_cfg.eval_batch_size, amp)


def feature_file(run_dir: Path, run_id: str, images: torch.Tensor, transform_key: dict, amp: bool,
                 batch_size: int) -> Path:
    digest = hashlib.sha256(json.dumps({"run_id": run_id, "transform": transform_key, "amp": amp,
                                        "batch_size": batch_size}, sort_keys=True).encode())
    digest.update(images.cpu().contiguous().numpy().tobytes())
    return Path(run_dir) / "features" / f"{digest.hexdigest()[:24]}.pt"


def stored_features(path: Path, model: torch.nn.Module, images: torch.Tensor, transform: Callable, batch_size: int,
                    amp: bool) -> torch.Tensor:
    """The features of ``images`` from ``path``, or computed and written there (one process at a
    time: several workers may start from the same run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_suffix(".lock")):
        if path.exists():
            try:
                return torch.load(path, map_location=images.device, weights_only=True)
            except Exception:       # a damaged file: compute it again
                path.unlink()
        features = cached_features(model, images, transform, batch_size, amp)
        save_atomic(features.cpu(), path)
        return features
