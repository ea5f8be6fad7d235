"""What a trained model scores: every test set of a run, in fp32, and a kept checkpoint
re-evaluated from its run's config (``python -m common.train --eval RUN``)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import data as D
from .config import ExperimentConfig, config_record
from .data.provenance import data_provenance
from .datasets import build_datasets, transforms_from_config
from .engine import CheckpointError, cached_features, classifier_probs, default_device, environment, now, predict
from .features import kept_run_features
from .metrics import evaluate_predictions
from .runstore import load_trained_model, saved_run


def frozen_features(model, cfg: ExperimentConfig, test_tf: Callable, parent: tuple[Path, str] | None) -> Callable:
    """``(images, bf16) -> features`` of ``model``'s backbone in evaluation mode (no
    augmentation); with a ``parent`` run ``(folder, run_id)`` that the frozen backbone comes
    from, stored in that folder and shared by every run that starts from it."""
    if parent is None or not cfg.train.classifier_only:
        return lambda images, amp: cached_features(model, images, test_tf, cfg.train.eval_batch_size, amp)
    return lambda images, amp: kept_run_features(*parent, model, images, test_tf, cfg.train, amp)


def evaluate_tests(model, tests: dict, test_tf, cfg: ExperimentConfig, group_counts,
                   frozen: Callable | None = None) -> tuple[dict, dict]:
    """``(metrics, predictions)`` of ``model`` on each test set (name -> (images, labels)), in
    fp32 (ECE and ties need exact logits). With ``frozen`` (a classifier-only run) the backbone
    features come from it and only the classifier runs."""
    metrics, predictions = {}, {}
    for name, (x, y) in tests.items():
        if frozen is None:
            probs = predict(model, x, test_tf, cfg.train.eval_batch_size, amp=False)
        else:
            probs = classifier_probs(model, frozen(x, False), cfg.train.eval_batch_size)
        metrics[name] = evaluate_predictions(probs, y, group_counts, cfg.eval.groups, cfg.eval.n_bins)
        predictions[f"{name}_probs"], predictions[f"{name}_labels"] = probs.astype(np.float32), np.asarray(y)
    return metrics, predictions


def evaluate_checkpoint(run_dir, checkpoint=None, data_root=None, device=None) -> dict:
    """Evaluate a kept checkpoint of a run (default: its final ``weights.pt``) on the run's test
    sets, rebuilt from its config and ``data_root`` (default: the folder it trained on if it is
    here, else ``$LTREPRO_DATA`` / ``./data``); returns a record-like dict (no training)."""
    run_dir = Path(run_dir)
    cfg, recorded = saved_run(run_dir)
    checkpoint = Path(checkpoint) if checkpoint else run_dir / "weights.pt"
    if not checkpoint.exists():
        raise CheckpointError(f"{checkpoint} not found: a run keeps its final weights with train.keep_weights "
                              f"(common.train sets it), and last.pt only while it trains")
    device = torch.device(device) if device else default_device()
    trained_on = recorded.get("data_root")
    if data_root is None and trained_on and Path(trained_on).is_dir():
        data_root = trained_on                      # where it trained, when that folder is here
    root = Path(data_root) if data_root else D.default_data_root()
    model = load_trained_model(cfg, checkpoint)
    ds = build_datasets(cfg.data, root)
    tests = {k: (D.to_tensor_images(x, device), y) for k, (x, y) in ds["tests"].items()}
    metrics, _ = evaluate_tests(model.to(device), tests, transforms_from_config(cfg)[1], cfg, ds["group_counts"])
    return {"config": config_record(cfg), "metrics": metrics, "checkpoint": str(checkpoint), "evaluated": now(),
            "environment": environment(device),
            "classes": ds["classes"], "train_counts": ds["train_counts"], "preset": cfg.preset,
            "epochs": cfg.train.epochs, "data": data_provenance(cfg.data.dataset, root)}
