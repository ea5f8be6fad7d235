"""LDAM trains on ``s * cos``: the model outputs those logits, so every stored probability and
ECE comes from them, not from the raw cosine (whose softmax barely leaves 1 / C)."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.config import load_config
from common.evaluation import evaluate_checkpoint
from common.experiment import run_experiment
from common.losses import build_loss
from common.metrics import evaluate_predictions
from common.models import build_model, scale_logits
from common.runstore import load_predictions


def test_the_scaled_model_and_ldam_give_the_official_loss():
    torch.manual_seed(0)
    counts = [500, 100, 20, 5]
    loss = build_loss("ldam", counts, max_m=0.5, s=30.0, drw=True)
    model = build_model("resnet32", 4, normed_classifier=True).eval()
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    cosine = model(x)
    assert cosine.abs().max() <= 1 + 1e-5
    scaled = scale_logits(model, loss.logit_scale)(x)
    assert torch.allclose(scaled, 30 * cosine, atol=1e-5)
    margins = torch.tensor(counts, dtype=torch.float32).pow(-0.25)
    margins = margins * 0.5 / margins.max()
    official = F.cross_entropy(30 * (cosine - F.one_hot(y, 4) * margins[y][:, None]), y)   # LDAM-DRW's losses.py
    assert loss(scaled, y).item() == pytest.approx(official.item(), rel=1e-5)
    assert build_loss("ce", counts).logit_scale == 1


def test_a_trained_ldam_models_stored_probabilities_are_those_of_its_scaled_logits(tiny_root, tmp_path):
    cfg = load_config("sla_multiexpert/configs/ldam_drw.yaml", "smoke",
                      {"data": {"dataset": "cifar10"}, "train": {"keep_weights": True}})
    rec = run_experiment(cfg, tmp_path / "run", tiny_root, progress=False)
    probs, labels = load_predictions(tmp_path / "run")["test"]
    top = probs.max(1).mean()
    assert top > 3 / probs.shape[1], f"mean top probability {top:.3f}: the softmax of unscaled cosines"
    assert rec["metrics"]["test"]["ece"] == pytest.approx(
        evaluate_predictions(probs, labels, rec["group_counts"], ["shot"], 15)["ece"])
    again = evaluate_checkpoint(tmp_path / "run", data_root=tiny_root)      # the kept weights, rebuilt from the config
    assert again["metrics"]["test"]["ece"] == pytest.approx(rec["metrics"]["test"]["ece"], abs=1e-6)
    json.dumps(rec["segments"])
