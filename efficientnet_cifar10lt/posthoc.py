"""tau-normalisation (Kang et al. 2020): stage 1's classifier rows rescaled to ``w_j / ||w_j||^tau``;
nothing is trained. Beyond the seed.

CIFAR-10-LT has no validation split (the head class's long-tailed set is all of its training
images), so ``tau`` cannot be chosen as Kang et al. choose it, on validation data. Two rows:
``tau = 1`` fixed in advance, and the best ``tau`` of the sweep on the test set, which is an
optimistic upper bound and labelled so. The bias is kept, so ``tau = 0`` is stage 1's classifier.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import data as D
from common.config import validate_config
from common.engine import cached_features, default_device, load_checkpoint, now, write_record
from common.experiment import (ParentNotFinishedError, build_datasets, claim, data_provenance, save_predictions,
                               transforms_from_config)
from common.metrics import evaluate_predictions
from common.models import build_model

TAUS = tuple(round(0.1 * i, 1) for i in range(21))         # 0, 0.1, ..., 2
TAU_ROWS = {"tau_norm_1": "tau-norm, tau = 1 (fixed in advance)",
            "tau_norm_oracle": "tau-norm, tau picked on the test set (upper bound)"}


def tau_normalised(weight: torch.Tensor, tau: float) -> torch.Tensor:
    """Each class row divided by its L2 norm to the power ``tau``."""
    return weight / weight.norm(dim=1, keepdim=True).pow(tau)


@torch.no_grad()
def tau_norm_probs(features: torch.Tensor, classifier: torch.nn.Linear, tau: float) -> np.ndarray:
    logits = F.linear(features.float(), tau_normalised(classifier.weight, tau), classifier.bias)
    return F.softmax(logits, dim=1).numpy()


@torch.no_grad()
def run_tau_norm(name: str, out: Path, data_root) -> dict:
    """The record of row ``name``, computed from ``out/stage1`` unless it is there already for
    that very stage-1 run."""
    stage1, run_dir = Path(out) / "stage1", Path(out) / name
    if not (stage1 / "weights.pt").exists() or not (stage1 / "record.json").exists():
        raise ParentNotFinishedError(f"{run_dir} rescales {stage1}'s classifier, which has not finished with its weights")
    parent = json.loads((stage1 / "record.json").read_text())
    if (run_dir / "record.json").exists():
        record = json.loads((run_dir / "record.json").read_text())
        if record["parent"]["run_id"] == parent["run_id"]:
            print(f"skip {run_dir}: finished")
            return record
    run_dir.mkdir(parents=True, exist_ok=True)
    with claim(run_dir, wait=True):
        return _compute(name, run_dir, stage1, parent, data_root)


def _compute(name, run_dir, stage1, parent, data_root) -> dict:
    started, device = now(), default_device()
    cfg = validate_config(parent["config"])
    root = Path(data_root) if data_root else D.default_data_root()
    model = build_model(cfg.model.name, 10, **cfg.model.kwargs)
    model.load_state_dict(load_checkpoint(stage1 / "weights.pt")["model"])
    model = model.to(device).float()
    ds = build_datasets(cfg.data, root)
    x, labels = ds["tests"]["test"]
    _, test_tf = transforms_from_config(cfg)
    features = cached_features(model, D.to_tensor_images(x, device), test_tf, cfg.train.eval_batch_size, amp=False).cpu()
    classifier = model.classifier.cpu()
    sweep = {tau: float((tau_norm_probs(features, classifier, tau).argmax(1) == labels).mean()) for tau in TAUS}
    tau = 1.0 if name == "tau_norm_1" else max(TAUS, key=lambda t: (sweep[t], -t))   # ties: the smaller tau
    probs = tau_norm_probs(features, classifier, tau)
    metrics = {"test": evaluate_predictions(probs, labels, ds["train_counts"], cfg.eval.groups, cfg.eval.n_bins)}
    save_predictions(run_dir / "predictions.npz", {"test_probs": probs.astype(np.float32), "test_labels": labels})
    config = {"posthoc": "tau_norm", "tau": tau, "selection": "fixed" if name == "tau_norm_1" else "test set (oracle)",
              "taus": list(TAUS), "stage1": parent["config"]}
    write_record(run_dir, config, metrics, started, preset=parent["preset"], epochs=parent["epochs"],
                 data=data_provenance(cfg.data.dataset, root), data_root=str(root), train_counts=ds["train_counts"],
                 classes=ds["classes"], tau_sweep={str(t): a for t, a in sweep.items()},
                 parent={"run": str(stage1), "run_id": parent["run_id"], "config_hash": parent["config_hash"]})
    return json.loads((run_dir / "record.json").read_text())
