"""Every row of seed 000's comparison, and the decoupling baselines of Kang et al. 2020 beside it.

    python -m efficientnet_cifar10lt.grid --preset smoke --data DIR [--only ROW ...] [--list] [--plan]

Stage 1 is one run; every stage-2 row starts from its kept weights and never retrains it.
tau-normalisation trains nothing: it rescales stage 1's classifier (``posthoc.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from common.grid import print_plan
from common.study import Run, Study, grid_main

from .posthoc import TAU_ROWS, run_tau_norm

HERE = Path(__file__).parent
C = HERE / "configs"
CONFIGS = (C / "base.yaml", C / "stage1.yaml", C / "stage2.yaml")
SEED_LOSSES = {"wce": "Modified CE", "bs": "Balanced Softmax", "focal": "Focal", "cb": "Class-Balanced",
               "cb_focal": "CB-Focal"}


@dataclass(frozen=True)
class Row(Run):
    label: str = ""          # as the tables show it
    in_seed: bool = True     # False: beyond the seed (Kang et al. 2020), marked as such


BALANCED = {"data": {"sampler": "class_balanced"}}
# Cui et al. start a fresh classifier of a sigmoid loss at a prior of 0.1 per class
FRESH_HEAD = {"cb_focal": {"model": {"classifier_prior": 0.1}}}
ROWS = [
    Row("baseline", C / "base.yaml", {}, "Baseline (CE)"),
    Row("reweight", C / "base.yaml", BALANCED, "Reweight (WeightedRandomSampler)"),
    Row("baseline_adamw", C / "base.yaml", {"train": {"optimizer": "adamw", "weight_decay": 0.9999}},
        "Baseline (CE), AdamW with decoupled weight decay 0.9999", in_seed=False),
    Row("stage1", C / "stage1.yaml", {}, "Decoupled stage 1 alone (CE)", in_seed=False),
    *[Row(f"decoupled_{loss}", C / "stage2.yaml", {"loss": {"name": loss}, **FRESH_HEAD.get(loss, {})}, f"Decoupled + {label}")
      for loss, label in SEED_LOSSES.items()],
    Row("crt", C / "stage2.yaml", BALANCED, "cRT (class-balanced sampling + CE)", in_seed=False),
    Row("lws", C / "stage2.yaml", {**BALANCED, "model": {"reset_classifier": False, "lws": True}},
        "LWS (learnable weight scaling)", in_seed=False),
]
ROW_LABELS = {r.name: r.label for r in ROWS} | {name: label for name, label in TAU_ROWS.items()}
IN_SEED = {r.name for r in ROWS if r.in_seed}


def run_config(row: Row, preset: str, cli: dict | None = None):
    return row.job(preset, Path("."), cli).config


STUDY = Study("efficientnet_cifar10lt", HERE, __doc__.splitlines()[0], CONFIGS,
              jobs=lambda preset, root, cli, args: [row.job(preset, root, cli) for row in ROWS], plan=print_plan, what="row",
              derived={name: partial(run_tau_norm, name) for name in TAU_ROWS})


def main(argv=None):
    grid_main(STUDY, argv)


if __name__ == "__main__":
    main()
