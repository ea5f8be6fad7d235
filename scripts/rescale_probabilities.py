"""Re-derive the probabilities and metrics of runs that finished before the model applied its
loss's logit scale (LDAM's s: :func:`common.models.scale_logits`), from their saved files.

    python scripts/rescale_probabilities.py [results]       # every such run under results/*/runs

Such a run stored ``softmax(z)`` of the raw cosine ``z`` while its loss trained on ``s * z``.
``softmax(s * log p) = softmax(s * z)`` exactly (the row constant of ``log p`` cancels), so its
``predictions.npz`` and the probability metrics of its ``record.json`` (ECE; accuracies do not
change) are rewritten from the saved probabilities, and the record says so
(``"logit_scale"``, ``"rescaled"``). A run without saved predictions is listed, not touched.
Runs that finished after the fix carry ``"logit_scale"`` already and are left alone.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.engine import now  # noqa: E402
from common.losses import build_loss  # noqa: E402
from common.metrics import evaluate_predictions  # noqa: E402
from common.runstore import (PREDICTIONS, RECORD, load_predictions, read_record, record_text,  # noqa: E402
                             save_predictions)


def logit_scale(record: dict) -> float:
    loss = record["config"].get("loss")
    return 1.0 if loss is None else build_loss(class_counts=[1, 1], **loss).logit_scale


def softmax_of_scaled_log(probs: np.ndarray, scale: float) -> np.ndarray:
    """``softmax(scale * log probs)`` per row, in float64, returned as float32."""
    z = scale * np.log(np.maximum(probs.astype(np.float64), np.finfo(np.float64).tiny))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def rescale_run(run_dir: Path, scale: float) -> dict:
    """Rewrite ``run_dir``'s predictions and record from ``softmax(scale * log p)``; returns the record."""
    record = read_record(run_dir / RECORD)
    cfg_eval = record["config"]["eval"]
    arrays = {}
    for name, (probs, labels) in load_predictions(run_dir).items():
        scaled = softmax_of_scaled_log(probs, scale)
        arrays[f"{name}_probs"], arrays[f"{name}_labels"] = scaled, labels
        before = record["metrics"][name]
        record["metrics"][name] = evaluate_predictions(scaled, labels, record.get("group_counts"),
                                                       cfg_eval["groups"], cfg_eval["n_bins"])
        assert record["metrics"][name]["accuracy"] == before["accuracy"], f"{run_dir}: the top-1 changed"
    save_predictions(run_dir / PREDICTIONS, arrays)
    record["logit_scale"] = scale
    record["rescaled"] = {"on": now(), "by": "scripts/rescale_probabilities.py",
                          "why": f"stored softmax(z) of a loss that trains on {scale:g} * z"}
    tmp = (run_dir / RECORD).with_suffix(".tmp")
    tmp.write_text(record_text(record))
    tmp.replace(run_dir / RECORD)
    return record


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    for path in sorted(args.results.glob(f"*/runs/**/{RECORD}")):
        record = read_record(path)
        scale = logit_scale(record)
        if scale == 1 or "logit_scale" in record:
            continue
        if not (path.parent / PREDICTIONS).exists():
            print(f"left as it is (no {PREDICTIONS} to re-derive from): {path.parent}")
            continue
        before = record["metrics"]["test"]["ece"]
        after = rescale_run(path.parent, scale)["metrics"]["test"]["ece"]
        print(f"rescaled {path.parent}: test ECE {100 * before:.2f} -> {100 * after:.2f}")


if __name__ == "__main__":
    main()
