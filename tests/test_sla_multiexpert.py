"""Seed 003: SLA weights, benchmark tracking, expert averaging, the two-stage switch, smoke run."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.config import load_config
from common.experiment import run_experiment
from sla_multiexpert.grid import runs
from sla_multiexpert.model import MultiExpertResNet32
from sla_multiexpert.sla import BenchmarkCosines, sla_weights, target_cosine
from sla_multiexpert.train import build_step


def test_sla_weights_hand_computed():
    # two classes; sample 0 of class 0 with adjusted logits (ln 3, 0) -> p_y = 3/4
    adjusted = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    targets = torch.tensor([0, 1])
    cos_y = torch.tensor([0.2, 0.5])
    cos_star = torch.tensor([0.8, 0.5])
    w = sla_weights(adjusted, targets, cos_y, cos_star, gamma=2.0, tau=1.0)
    expected0 = (1 - 0.75) ** 2 * math.exp(0.8 - 0.2)   # (1 - p)^gamma * exp(tau (cos* - cos))
    expected1 = (1 - 0.5) ** 2 * math.exp(0.0)
    assert w.tolist() == pytest.approx([expected0, expected1], rel=1e-6)
    w_tau2 = sla_weights(adjusted, targets, cos_y, cos_star, gamma=2.0, tau=2.0)
    assert w_tau2[0].item() == pytest.approx((0.25 ** 2) * math.exp(2 * 0.6), rel=1e-6)


def test_target_cosine():
    feats = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    weight = torch.tensor([[1.0, 0.0], [0.0, 2.0]])   # class rows
    assert target_cosine(feats, weight, torch.tensor([1, 0])).tolist() == pytest.approx([0.8, 1.0])


def test_benchmark_tracks_largest_logit_sample_per_class_and_expert():
    tracker = BenchmarkCosines(num_experts=2, num_classes=3, device="cpu")
    targets = torch.tensor([0, 0, 1, 2])
    logits = torch.zeros(2, 4, 3)
    logits[0, 0, 0], logits[0, 1, 0] = 5.0, 2.0   # expert 0: sample 0 is class 0's best
    logits[1, 0, 0], logits[1, 1, 0] = 1.0, 4.0   # expert 1: sample 1 is
    logits[:, 2, 1], logits[:, 3, 2] = 1.0, 1.0
    cos = torch.tensor([[0.1, 0.9, 0.3, 0.4], [0.2, 0.7, 0.5, 0.6]])
    tracker.observe(logits, cos, targets)
    tracker.end_epoch()
    assert torch.allclose(tracker.cos_star, torch.tensor([[0.1, 0.3, 0.4], [0.7, 0.5, 0.6]]))
    # next epoch: only a better class-1 sample for expert 0 is seen; the rest is kept
    logits2 = torch.zeros(2, 1, 3)
    logits2[0, 0, 1] = 9.0
    logits2[1, 0, 1] = -9.0
    tracker.observe(logits2, torch.tensor([[0.95], [0.05]]), torch.tensor([1]))
    tracker.end_epoch()
    assert torch.allclose(tracker.cos_star, torch.tensor([[0.1, 0.95, 0.4], [0.7, 0.05, 0.6]]))


def test_expert_average_is_mean_of_softmax():
    torch.manual_seed(0)
    model = MultiExpertResNet32(5).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        logits, feats = model.expert_outputs(x)
        assert logits.shape == (3, 4, 5) and feats.shape == (3, 4, 48)
        mean_probs = F.softmax(logits, -1).mean(0)
        assert torch.allclose(F.softmax(model(x), -1), mean_probs, atol=1e-6)
        views = model.expert_outputs([x, x, x])[0]
        assert torch.allclose(views, logits, atol=1e-5)


def test_shared_trunk_and_expert_widths():
    model = MultiExpertResNet32(10)
    assert model.layer1[0].conv1.out_channels == 16
    assert [e[1][-1].conv2.out_channels for e in model.experts] == [48, 48, 48]


def test_two_stage_switch_mixup_then_sla(tiny_root, tmp_path, monkeypatch):
    import sla_multiexpert.train as train

    calls = {"mixup": [], "weights": []}
    real_beta = np.random.beta

    def spy_beta(*a, **k):                 # mixup draws its coefficient on the host
        calls["mixup"].append(True)
        return real_beta(*a, **k)

    monkeypatch.setattr(np.random, "beta", spy_beta)
    real_sla = train.sla_weights

    def spy_sla(*args, **kwargs):
        w = real_sla(*args, **kwargs)
        calls["weights"].append(w.detach().clone())
        return w

    monkeypatch.setattr(train, "sla_weights", spy_sla)
    cfg = load_config("sla_multiexpert/configs/method.yaml", "smoke",
                      {"data": {"dataset": "cifar10", "imb_factor": 0.5}, "train": {"epochs": 2, "batch_size": 32}})
    captured = {}

    def build(ctx):
        step, hooks = build_step(ctx)
        captured["step"] = step

        def logged(model, images, labels, indices, epoch):
            n_mix, n_w = len(calls["mixup"]), len(calls["weights"])
            loss = step(model, images, labels, indices, epoch)
            captured.setdefault(epoch, []).append((len(calls["mixup"]) - n_mix, len(calls["weights"]) - n_w, loss.item()))
            return loss
        return logged, hooks

    rec = run_experiment(cfg, tmp_path / "run", tiny_root, build_step=build, progress=False)
    stage1, stage2 = captured[0], captured[1]
    assert all(m == 1 and w == 0 for m, w, _ in stage1)        # mixup on, no SLA before the switch
    assert all(m == 0 and w == 3 for m, w, _ in stage2)        # mixup off, SLA for 3 experts after
    assert captured["step"].tracker.cos_star is not None       # benchmark list built at the switch
    assert all(torch.isfinite(w).all() and (w >= 0).all() for w in calls["weights"])
    assert rec["metrics"]["test"]["ece"] >= 0


def test_stage2_loss_differs_from_plain_la_loss(tiny_root, tmp_path):
    """At the switch epoch the loss becomes the SLA-weighted one, not the plain LA-CE."""
    torch.manual_seed(0)
    cfg = load_config("sla_multiexpert/configs/method.yaml", "smoke",
                      {"data": {"dataset": "cifar10", "imb_factor": 0.5}, "method": {"augments": ["none"] * 3},
                       "train": {"batch_size": 32}})
    out = {}

    def build(ctx):
        step, hooks = build_step(ctx)
        out["ctx"], out["step"], out["hooks"] = ctx, step, hooks
        return step, hooks

    run_experiment(cfg, tmp_path / "run", tiny_root, build_step=build, progress=False)
    ctx, step = out["ctx"], out["step"]
    model = ctx.model.eval()
    images, labels = ctx.loader.images[:64], ctx.loader.labels[:64]
    with torch.no_grad():
        logits, _ = model.expert_outputs([ctx.augment("none")(images)] * 3)
        plain = sum(F.cross_entropy(l + ctx.loss_fn.offset(), labels) for l in logits)
        weighted = step(model, images, labels, None, epoch=1)
    assert not torch.isclose(plain, weighted)


def test_grid_covers_every_table_cell_in_paper_preset():
    import pandas as pd

    paper = pd.read_csv("sla_multiexpert/paper_numbers.csv", dtype=str)
    cells = {cell for run in runs("paper") for cell in run.cells}
    for table in ("1", "7", "8"):
        wanted = {(t, r, c) for t, r, c in zip(paper.table, paper.row, paper.column) if t == table}
        assert wanted <= cells, table
    assert {("2", "ours", f"{d}_{r}") for d in ("cifar10", "cifar100") for r in (200, 100, 50, 10)} <= cells
    names = [r.name for r in runs("paper")]
    assert len(names) == len(set(names))


def test_smoke_run_end_to_end(tiny_root, tmp_path):
    from sla_multiexpert.grid import run_config

    run = next(r for r in runs("smoke") if r.name == "cifar100_r100__ours")
    rec = run_experiment(run_config(run, "smoke"), tmp_path / run.name, tiny_root, build_step=build_step,
                         progress=False)
    m = rec["metrics"]["test"]
    assert rec["preset"] == "smoke" and len(rec["history"]) == 2
    assert {"accuracy", "ece", "many", "medium", "few"} <= set(m) and 0 <= m["accuracy"] <= 1
    assert min(rec["train_counts"]) >= 1 and rec["train_counts"][0] == 6   # smoke floors the tail at 1


def test_grid_skips_the_runs_of_a_missing_dataset_and_the_report_shows_dashes(tmp_path, monkeypatch, capsys):
    """Offline without CIFAR-100 (run_all.sh passes --skip-missing-data outside smoke): the
    CIFAR-10 cells train, the CIFAR-100 ones are left out with one line, the tables still come."""
    import pandas as pd

    from common import study as common_study
    from common.data.synthetic import write_synthetic_cifar
    from sla_multiexpert import grid as sla_grid
    from sla_multiexpert import report as sla_report

    only_cifar10 = tmp_path / "data"
    write_synthetic_cifar("cifar10", only_cifar10, 16, 3, seed=3)
    trained = []
    with monkeypatch.context() as m:   # the selection of the cpu_hour preset, without training
        m.setattr(common_study, "run_jobs", lambda jobs, *a, **k: trained.extend(j.name for j in jobs))
        sla_grid.main(["--preset", "cpu_hour", "--data", str(only_cifar10), "--skip-missing-data"])
    n100 = sum(r.name.startswith("cifar100_") for r in runs("cpu_hour"))
    assert trained == [r.name for r in runs("cpu_hour") if r.name.startswith("cifar10_")]
    lines = [line for line in capsys.readouterr().out.splitlines() if "not found" in line]
    assert lines == [f"CIFAR-100 not found in {only_cifar10 / 'cifar-100-python'} (offline?): its {n100} run(s) "
                     f"are skipped; the tables show dashes for them"]
    with pytest.raises(SystemExit) as stop:     # no dataset of the selection there: an error, not a silent no-op
        sla_grid.main(["--preset", "cpu_hour", "--data", str(only_cifar10), "--skip-missing-data",
                       "--only", "cifar100_*"])
    assert stop.value.code not in (0, None) and "nothing to train" in str(stop.value)

    sla_grid.main(["--preset", "smoke", "--data", str(only_cifar10), "--out", str(tmp_path / "runs"),
                   "--skip-missing-data", "--only", "cifar1*_r100__ce"])                   # trains one tiny run
    assert [p.name for p in (tmp_path / "runs" / "smoke").iterdir()] == ["cifar10_r100__ce"]
    sla_report.main(["--preset", "smoke", "--results", str(tmp_path)])
    table = pd.read_csv(tmp_path / "smoke" / "table_2.csv", index_col=0)
    assert table.loc["ce", "cifar10_100_ours"] != "–" and table.loc["ce", "cifar100_100_ours"] == "–"


def test_table_1_trains_plain_resnet32_and_la_the_methods_schedule():
    from common.models import build_model
    from sla_multiexpert.grid import run_config

    def n_params(model):
        return sum(p.numel() for p in model.parameters())

    by_name = {r.name: r for r in runs("paper")}
    table_1 = [r for name, r in by_name.items() if "__t1_" in name]
    assert table_1
    for run in table_1:
        cfg = run_config(run, "paper")
        model = build_model(cfg.model.name, 100, **cfg.model.kwargs)
        assert n_params(model) == n_params(build_model("resnet32", 100))
        assert list(cfg.method.augments) == ["standard"]
    la, ce = run_config(by_name["cifar10_r100__la"], "paper"), run_config(by_name["cifar10_r100__ce"], "paper")
    assert (la.loss.name, la.loss.tau) == ("la", 1.0)
    assert la.train == ce.train and la.model == ce.model
    la_source = run_config(by_name["cifar10_r100__la_source"], "paper").train
    assert la_source.epochs == 1241 and la_source.compile          # the 1241-epoch runs compile, and they alone
    assert [name for name, r in by_name.items() if run_config(r, "paper").train.compile] == [
        f"{ds}_r{ratio}__la_source" for ds in ("cifar10", "cifar100") for ratio in (100, 50, 10)]
