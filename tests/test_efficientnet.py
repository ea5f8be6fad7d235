"""Seed 000: rows, the reweight sampler, tau-normalisation, LWS, the smoke grid and the tables."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from common.data import BatchLoader, build_augment, class_balanced_sample_weights
from common.engine import cached_features, classifier_probs, predict
from common.models import LearnableWeightScaling, build_model, freeze_backbone
from efficientnet_cifar10lt import grid as eff_grid
from efficientnet_cifar10lt import report as eff_report
from efficientnet_cifar10lt.posthoc import tau_norm_probs, tau_normalised


def test_rows_and_the_paper_protocol():
    names = [r.name for r in eff_grid.ROWS]
    assert len(names) == len(set(names)) and {"baseline", "reweight", "stage1", "decoupled_wce", "crt", "lws"} <= set(names)
    base = eff_grid.run_config(eff_grid.ROWS[0], "paper")
    t = base.train
    assert (t.epochs, t.batch_size, t.lr, t.optimizer, t.size) == (30, 128, 1e-4, "adam", 224)
    assert base.model.name == "efficientnet_b0" and base.model.pretrained and base.data.imb_factor == 0.01
    stage2 = eff_grid.run_config(next(r for r in eff_grid.ROWS if r.name == "decoupled_cb"), "paper")
    assert stage2.model.init_from == "stage1" and stage2.train.classifier_only and stage2.train.epochs == 10
    stage1 = eff_grid.run_config(next(r for r in eff_grid.ROWS if r.name == "stage1"), "paper")
    assert stage2.loss.name == "cb" and stage1.train.epochs == 20
    reweight = eff_grid.run_config(eff_grid.ROWS[1], "paper")
    assert reweight.data.sampler == "class_balanced" and reweight.train.epochs == 30


def test_reweight_sampler_draws_every_class_equally_often():
    labels = np.repeat(np.arange(4), [800, 150, 40, 10])
    loader = BatchLoader(torch.zeros(len(labels), 1), labels, 100, sample_weights=class_balanced_sample_weights(labels))
    draws = np.concatenate([loader.labels[loader.order()].numpy() for loader.epoch in range(40)])
    assert len(draws) == 40 * len(labels)            # one epoch = len(train set) draws, with replacement
    share = np.bincount(draws, minlength=4) / len(draws)
    assert np.allclose(share, 0.25, atol=0.01), share


def test_tau_zero_is_the_plain_classifier_and_tau_one_equalises_norms():
    torch.manual_seed(0)
    linear = torch.nn.Linear(8, 5)
    features = torch.randn(20, 8)
    plain = torch.softmax(linear(features), 1).detach().numpy()
    assert np.allclose(tau_norm_probs(features, linear, 0.0), plain, atol=1e-6)
    assert torch.allclose(tau_normalised(linear.weight, 1.0).norm(dim=1), torch.ones(5))


def test_lws_trains_only_the_scale():
    model = torch.nn.Module()
    model.backbone, model.classifier = torch.nn.Linear(4, 4), LearnableWeightScaling(torch.nn.Linear(4, 3), 3)
    freeze_backbone(model)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["classifier.scale"]
    x = torch.randn(2, 4)
    assert torch.allclose(model.classifier(x), model.classifier.classifier(x))   # scale starts at 1


def test_smoke_grid_reuses_stage_one_and_writes_every_table(tmp_path, capsys, monkeypatch):
    from common import features
    from common.data.synthetic import write_synthetic_cifar

    passes = []
    monkeypatch.setattr(features, "cached_features", lambda *a, **k: passes.append(a[1].shape) or cached_features(*a, **k))

    write_synthetic_cifar("cifar10", tmp_path / "data", 12, 4, seed=3)
    base = ["--preset", "smoke", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "runs"),
            "--set", "train.epochs=1", "--only", "stage1", "decoupled_wce", "decoupled_bs", "lws", "tau_norm_1",
            "tau_norm_oracle"]
    eff_grid.main(base)
    runs = tmp_path / "runs" / "smoke"
    stage1 = json.loads((runs / "stage1" / "record.json").read_text())
    for row in ("decoupled_wce", "decoupled_bs", "lws"):
        assert json.loads((runs / row / "record.json").read_text())["parent"]["run_id"] == stage1["run_id"]
    for row in ("tau_norm_1", "tau_norm_oracle"):
        assert json.loads((runs / row / "record.json").read_text())["sources"]["stage1"]["run_id"] == stage1["run_id"]
    # three stage-2 rows and two post-hoc rows: one backbone pass over the training set, one over the test set
    assert len(passes) == 2 and len(list((runs / "stage1" / "features").glob("*.pt"))) == 2
    capsys.readouterr()
    eff_grid.main(base)                              # all finished: nothing is trained again
    assert capsys.readouterr().out.count("skip") == 6
    oracle = json.loads((runs / "tau_norm_oracle" / "record.json").read_text())
    assert oracle["metrics"]["test"]["accuracy"] == max(oracle["tau_sweep"].values())
    eff_report.main(["--preset", "smoke", "--results", str(tmp_path)])
    out = tmp_path / "smoke"
    for name in ("comparison.md", "summary.md", "per_class_stage1.md", "confusion_decoupled_wce.png",
                 "recall_per_class.png", "tau_sweep.png"):
        assert (out / name).stat().st_size > 0, name


def _fake(name, acc):
    return {"config": {}, "run_id": name, "metrics": {"test": {
        "accuracy": acc / 100, "weighted_f1": acc / 100 - 0.01, "macro_f1": acc / 100 - 0.02, "many": acc / 100,
        "medium": 0.5, "few": float("nan"), "ece": 0.1, "precision": [0.5, 0.5], "recall": [1.0, 0.0],
        "f1": [0.6, 0.0], "support": [5, 5], "confusion_matrix": [[5, 0], [5, 0]]}},
        "train_counts": [10, 1], "classes": ["a", "b"], "preset": "smoke", "epochs": 0, "data": "FAKE test record",
        "environment": {"device": "none"}, "finished": "2000-01-01T00:00:00"}


def test_tables_from_fake_records(tmp_path):
    for name, acc in (("baseline", 80.0), ("decoupled_wce", 90.0), ("lws", 70.0)):
        (tmp_path / "runs" / "smoke" / name).mkdir(parents=True)
        (tmp_path / "runs" / "smoke" / name / "record.json").write_text(json.dumps(_fake(name, acc)))
    eff_report.main(["--preset", "smoke", "--results", str(tmp_path)])
    table = pd.read_csv(tmp_path / "smoke" / "comparison.csv", index_col=0)
    row = table.loc["Baseline (CE)"]
    assert float(row["accuracy_paper"]) == 84.23 and float(row["accuracy_ours"]) == 80.0
    assert float(row["accuracy_diff"]) == pytest.approx(80.0 - 84.23, abs=0.006)
    assert float(row["accuracy_body_paper"]) == 84.15 and float(row["weighted_f1_ours"]) == 79.0
    assert table.loc["Reweight (WeightedRandomSampler)", "accuracy_ours"] == "–"    # no run: a dash
    assert "LWS (learnable weight scaling) [beyond the seed]" in table.index
    summary = pd.read_csv(tmp_path / "smoke" / "summary.csv", index_col=0)
    assert summary.loc["Decoupled + Modified CE", "few"] == "–"
    assert "FAKE test record" in (tmp_path / "smoke" / "comparison.md").read_text()


def test_paper_preset_offline_stops_before_training_naming_the_weights(tmp_path, offline_weight_caches):
    with pytest.raises(SystemExit) as stop:
        eff_grid.main(["--preset", "paper", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "runs")])
    msg = str(stop.value)
    assert "nothing was trained" in msg and "efficientnet_b0.ra_in1k" in msg and "expected in cache" in msg
    assert "--fetch-weights" in msg and not (tmp_path / "runs").exists()


def test_plan_lists_runs_with_an_estimate(capsys):
    eff_grid.main(["--preset", "smoke", "--plan", "--only", "baseline", "decoupled_wce"])
    out = capsys.readouterr().out
    assert "images/s" in out and "baseline" in out and "decoupled_wce" in out and "total ~" in out


def test_classifier_on_stored_features_predicts_what_the_model_predicts():
    torch.manual_seed(0)
    model = build_model("resnet32", 10)
    images = torch.randint(0, 256, (37, 3, 32, 32), dtype=torch.uint8)
    transform = build_augment("none")
    expected = predict(model, images, transform, batch_size=16, amp=False)
    stored = classifier_probs(model, cached_features(model, images, transform, 16, amp=False), batch_size=16)
    np.testing.assert_array_equal(stored, expected)


def _row(name, preset):
    return eff_grid.run_config(next(r for r in eff_grid.ROWS if r.name == name), preset)


def test_lite_preset_is_the_seed_protocol_on_pretrained_lite0_at_64_px():
    base, stage2 = _row("baseline", "lite"), _row("decoupled_wce", "lite")
    assert (base.model.name, base.model.pretrained, base.train.size, base.train.normalize) == \
        ("efficientnet_lite0", True, 64, "inception")
    assert (base.train.epochs, base.train.lr, base.train.batch_size, base.train.optimizer) == (30, 1e-4, 128, "adam")
    assert (_row("stage1", "lite").train.epochs, stage2.train.epochs, stage2.model.name) == (20, 10, "efficientnet_lite0")


def test_weight_decay_reading_row_and_cb_focal_fresh_classifier_prior():
    adamw = _row("baseline_adamw", "paper").train
    assert (adamw.optimizer, adamw.weight_decay) == ("adamw", 0.9999)
    assert _row("decoupled_cb_focal", "paper").model.classifier_prior == 0.1
    assert _row("decoupled_cb", "paper").model.classifier_prior is None
