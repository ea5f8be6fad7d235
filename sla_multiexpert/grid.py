"""Every run behind Tables 1, 2, 3, 7, 8 and Figure 6, and the table cells each one fills.

    python -m sla_multiexpert.grid --preset smoke --data DIR [--only PATTERN ...] [--list] [--plan]
    python -m sla_multiexpert.grid --preset cpu_hour --data DIR --skip-missing-data   # CIFAR-10 cells only,
                                                                  # when DIR has no CIFAR-100 (offline)

A run is ``<dataset>_r<ratio>__<variant>``; ``cells`` maps ``(table, row, column)`` of the
paper-numbers file to the metric that fills it. In the smoke preset only the Table 2 runs
cover every dataset x ratio; the sweeps run at ratio 100 with two values each, to fit in
minutes (the other cells show a dash).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from common.config import deep_merge
from common.datasets import num_classes_of
from common.grid import print_plan
from common.models import build_model
from common.profiling import forward_flops
from common.report import percent
from common.study import Run, Study, grid_main

HERE = Path(__file__).parent
C = HERE / "configs"
CONFIGS = tuple(C / f"{name}.yaml" for name in ("method", "ce_baseline", "ce_ldam_recipe", "ldam_drw", "cb_focal",
                                                 "la_menon", "la_menon_cifar100"))
# Table 2 baselines at the ratios the paper gives them (not 200): config file per dataset and the
# grid's overrides. LDAM-DRW and CB-Focal at the protocol of the paper their numbers come from;
# LA at the method's 200-epoch schedule, as the caption says of every row, and again at Menon et
# al.'s own 1241 / 1419 epochs ("LA, source protocol")
LA_200 = {"loss": {"name": "la", "tau": 1.0}}
BASELINES = {"ldam_drw": ({"cifar10": C / "ldam_drw.yaml", "cifar100": C / "ldam_drw.yaml"}, {}),
             "cb_focal": ({"cifar10": C / "cb_focal.yaml", "cifar100": C / "cb_focal.yaml"}, {}),
             "la": ({"cifar10": C / "ce_baseline.yaml", "cifar100": C / "ce_baseline.yaml"}, LA_200),
             "la_source": ({"cifar10": C / "la_menon.yaml", "cifar100": C / "la_menon_cifar100.yaml"}, {})}
# Table 1 on plain ResNet-32, as the seed describes its runs: the method's trainer with one expert
# whose stages are 32 and 64 channels wide is exactly ResNet-32, seeing one standard view
PLAIN_RESNET32 = {"model": {"kwargs": {"num_experts": 1, "expert_widths": [32, 64]}},
                  "method": {"augments": ["standard"]}}
DATASETS = ("cifar10", "cifar100")
RATIOS = (200, 100, 50, 10)
INV_TAUS = (0.9, 0.8, 0.7, 0.6, 0.5)          # 1 / tau; 1 / tau = 1 is the main run
ALPHAS = (0.1, 0.4, 0.6, 0.8, 1.0)            # Figure 6; 0.2 is the main run
SMOKE_SWEEP = {"inv_taus": (0.9, 0.5), "alphas": (0.4, 1.0), "ratios": (100,)}


@dataclass(frozen=True)
class Cells(Run):
    cells: dict = field(default_factory=dict)  # (table, row, column) of the paper-numbers file -> metric


def _data(ds, ratio):
    return {"data": {"dataset": ds, "imb_factor": 1.0 / ratio}}


def _method(ds, ratio, **method):
    return {**_data(ds, ratio), "method": method}


def runs(preset: str) -> list[Cells]:
    smoke = preset == "smoke"
    inv_taus = SMOKE_SWEEP["inv_taus"] if smoke else INV_TAUS
    alphas = SMOKE_SWEEP["alphas"] if smoke else ALPHAS
    sweep_ratios = SMOKE_SWEEP["ratios"] if smoke else None
    out = []
    for ds in DATASETS:
        for ratio in RATIOS:
            key = f"{ds}_{ratio}"
            ours_cells = {("2", "ours", key): "accuracy", ("7", key, "acc_invtau_1"): "accuracy",
                          ("7", key, "ece_invtau_1"): "ece"}
            if ratio != 200:
                ours_cells.update({("8", "mu_sla_tl", f"{key}_acc"): "accuracy", ("8", "mu_sla_tl", f"{key}_ece"): "ece"})
            if ds == "cifar100" and ratio == 100:
                ours_cells.update({("fig6", "alpha_0.2", "cifar100_100_acc"): "accuracy",
                                   ("fig6", "alpha_0.2", "cifar100_100_ece"): "ece"})
            if ds == "cifar10" and ratio == 100:
                ours_cells.update({("fig6", "alpha_0.2", "cifar10_100_acc"): "accuracy",
                                   ("fig6", "alpha_0.2", "cifar10_100_ece"): "ece"})
            out.append(Cells(f"{ds}_r{ratio}__ours", C / "method.yaml", _data(ds, ratio), ours_cells))
            out.append(Cells(f"{ds}_r{ratio}__ce", C / "ce_baseline.yaml", _data(ds, ratio),
                           {("2", "ce", key): "accuracy"}))
            if ratio != 200:
                out += [Cells(f"{ds}_r{ratio}__{row}", configs[ds], deep_merge(_data(ds, ratio), overrides),
                              {("2", row, key): "accuracy"}) for row, (configs, overrides) in BASELINES.items()]
            if (ds, ratio) == ("cifar10", 100):     # [beyond the seed] the CE gap's diagnostic
                out.append(Cells(f"{ds}_r{ratio}__ce_ldam_recipe", C / "ce_ldam_recipe.yaml", _data(ds, ratio),
                                 {("2", "ce_ldam_recipe", key): "accuracy"}))
            if sweep_ratios and ratio not in sweep_ratios:
                continue
            for inv in inv_taus:
                out.append(Cells(f"{ds}_r{ratio}__invtau_{inv}", C / "method.yaml", _method(ds, ratio, tau=1.0 / inv),
                               {("7", key, f"acc_invtau_{inv}"): "accuracy", ("7", key, f"ece_invtau_{inv}"): "ece"}))
            if ratio != 200:
                for row, method in (("tl", {"mixup_alpha": 0.0, "weighting": "none"}),
                                    ("mu_tl", {"weighting": "none"}),
                                    ("sla_tl", {"mixup_alpha": 0.0})):
                    out.append(Cells(f"{ds}_r{ratio}__{row}", C / "method.yaml", _method(ds, ratio, **method),
                                   {("8", row, f"{key}_acc"): "accuracy", ("8", row, f"{key}_ece"): "ece"}))
            if ratio == 100:
                for alpha in alphas:
                    cells = {("fig6", f"alpha_{alpha}", f"{key}_acc"): "accuracy",
                             ("fig6", f"alpha_{alpha}", f"{key}_ece"): "ece"}
                    out.append(Cells(f"{ds}_r{ratio}__alpha_{alpha}", C / "method.yaml",
                                     _method(ds, ratio, mixup_alpha=alpha), cells))
    # Table 1: LA alone and LA + RW / CB / FL switched on at epoch 180 of 200, mixup 0.4
    for row, weighting in (("la", "none"), ("la_rw", "rw"), ("la_cb", "cb"), ("la_fl", "fl")):
        cells = {("1", row, c): m for c, m in (("many", "many"), ("medium", "medium"), ("few", "few"),
                                               ("all", "accuracy"), ("ece", "ece"))}
        out.append(Cells(f"cifar100_r100__t1_{row}", C / "method.yaml",
                         deep_merge(_method("cifar100", 100, mixup_alpha=0.4, weighting=weighting, switch_fraction=0.9),
                                    PLAIN_RESNET32), cells))
    if preset == "paper":  # Table 3: 400 epochs, lr steps and switch at 320 / 360
        cells = {("3", "ours", c): m for c, m in (("many", "many"), ("medium", "medium"), ("few", "few"),
                                                  ("all", "accuracy"), ("ece", "ece"))}
        out.append(Cells("cifar100_r100__ours_400ep", C / "method.yaml",
                       {**_method("cifar100", 100, switch_epoch=320),
                        "train": {"epochs": 400, "milestones": [320, 360]}}, cells))
    return out


def run_config(run: Run, preset: str, cli: dict | None = None):
    return run.job(preset, Path("."), cli).config


def describe(record: dict) -> str:
    m = record["metrics"]["test"]
    return (f"top-1 {100 * m['accuracy']:.2f}%  ECE {100 * m['ece']:.2f}%  many/medium/few "
            + "/".join(percent(m[g], 1) for g in ("many", "medium", "few")))


def probe(cfg, device) -> tuple[float, float, int, int]:
    """The plan's probe of a model's training step on ``device``, the study's own: for the
    multi-expert model the three augmented views (``benchmark.py``); evaluation is counted at
    three times the training speed."""
    from .benchmark import measure

    name = cfg.model.name
    images_per_s = measure(name, device, min(cfg.train.batch_size, 64), batches=2, warmup=1)[0]
    train_forward, test_forward = step_flops(name, num_classes_of(cfg.data))
    print(f"  probe {name}: train {images_per_s:.0f} images/s, {train_forward / 1e6:.0f} MFLOPs per training "
          f"image's forward", flush=True)
    return images_per_s, 3 * images_per_s, train_forward, test_forward


def step_flops(model_name: str, num_classes: int) -> tuple[int, int]:
    """Forward FLOPs per image (training, test): in training the multi-expert model's shared
    layers see the three views, so they run three times per image."""
    model = build_model(model_name, num_classes)
    test = forward_flops(model, 32)
    if model_name != "multi_expert_resnet32":
        return test, test
    return forward_flops(model, 32, forward=lambda m, x: m.expert_outputs([x] * m.num_experts)), test


STUDY = Study("sla_multiexpert", HERE, __doc__.splitlines()[0], CONFIGS,
              jobs=lambda preset, root, cli, args: [run.job(preset, root, cli) for run in runs(preset)],
              plan=partial(print_plan, probe=probe), describe=describe)


def main(argv=None):
    grid_main(STUDY, argv)


if __name__ == "__main__":
    main()
