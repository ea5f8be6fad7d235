"""tau-normalisation (Kang et al. 2020): stage 1's classifier rows rescaled to ``w_j / ||w_j||^tau``;
nothing is trained. Beyond the seed.

CIFAR-10-LT has no validation split (the head class's long-tailed set is all of its training
images), so ``tau`` cannot be chosen as Kang et al. choose it, on validation data. Two rows:
``tau = 1`` fixed in advance, and the best ``tau`` of the sweep on the test set, which is an
optimistic upper bound and labelled so. The bias is kept, so ``tau = 0`` is stage 1's classifier.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import data as D
from common.config import validate_config
from common.data.provenance import data_provenance
from common.datasets import build_datasets, transforms_from_config
from common.derived import derived_run
from common.engine import default_device
from common.features import kept_run_features
from common.metrics import evaluate_predictions
from common.precision import apply_numerics, choose_numerics
from common.runstore import ParentNotFinishedError, load_trained_model

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


def run_tau_norm(name: str, out: Path, data_root) -> dict:
    """The record of row ``name``, computed from ``out/stage1`` (skipped when it is there for
    that very stage-1 run)."""
    stage1 = Path(out) / "stage1"
    return derived_run(Path(out) / name, {"stage1": stage1}, lambda records: _compute(name, stage1, records["stage1"],
                                                                                       data_root))


@torch.no_grad()
def _compute(name: str, stage1: Path, parent: dict, data_root) -> dict:
    if not (stage1 / "weights.pt").exists():
        raise ParentNotFinishedError(f"{stage1} finished without keeping its weights (weights.pt)")
    device = default_device()
    cfg = validate_config(parent["config"])
    root = Path(data_root) if data_root else D.default_data_root()
    model = load_trained_model(cfg, stage1 / "weights.pt").to(device).float()
    numerics = choose_numerics(device, cfg.train)     # the memory format a stage-2 row evaluates in: same stored features
    apply_numerics(model, replace(numerics, compiled=False))
    ds = build_datasets(cfg.data, root)
    x, labels = ds["tests"]["test"]
    _, test_tf = transforms_from_config(cfg)
    features = kept_run_features(stage1, parent["run_id"], model, D.to_tensor_images(x, device), test_tf, cfg.train,
                                 amp=False).cpu()
    classifier = model.classifier.cpu()
    sweep = {tau: float((tau_norm_probs(features, classifier, tau).argmax(1) == labels).mean()) for tau in TAUS}
    tau = 1.0 if name == "tau_norm_1" else max(TAUS, key=lambda t: (sweep[t], -t))   # ties: the smaller tau
    probs = tau_norm_probs(features, classifier, tau)
    return {"config": {"posthoc": "tau_norm", "tau": tau, "taus": list(TAUS), "stage1": parent["config"],
                       "selection": "fixed in advance" if name == "tau_norm_1" else "test set (oracle)"},
            "metrics": {"test": evaluate_predictions(probs, labels, ds["group_counts"], cfg.eval.groups,
                                                     cfg.eval.n_bins)},
            "predictions": {"test_probs": probs.astype(np.float32), "test_labels": labels},
            "preset": parent["preset"], "epochs": parent["epochs"], "data": data_provenance(cfg.data.dataset, root),
            "data_root": str(root), "train_counts": ds["train_counts"], "group_counts": ds["group_counts"],
            "classes": ds["classes"], "tau_sweep": {str(t): a for t, a in sweep.items()}}
