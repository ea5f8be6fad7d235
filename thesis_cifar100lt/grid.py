"""The thesis grid: every model x loss x training set, run in one process, resumably.

    python -m thesis_cifar100lt.grid --preset smoke --data DIR [--models ...] [--losses ...]
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from common.experiment import load_config, run_experiment

HERE = Path(__file__).parent
MODELS = ["resnet50", "mobilenet_v2", "convnext_base", "vit_base_patch16_224"]
LOSSES = ["ce", "focal", "wce", "cb", "bs", "seql", "ldam"]
TRAIN_SETS = ["balanced", "long_tailed"]


def grid(models=MODELS, losses=LOSSES, train_sets=TRAIN_SETS):
    """``(run name, config overrides)`` for every cell, in run order."""
    for model, train_set, loss in itertools.product(models, train_sets, losses):
        yield (f"{model}__{loss}__{train_set}",
               {"model": {"name": model}, "loss": {"name": loss}, "data": {"train_set": train_set}})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, choices=["smoke", "quick", "paper"])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default="results/thesis_cifar100lt/runs")
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--losses", nargs="+", default=LOSSES, choices=LOSSES)
    parser.add_argument("--train-sets", nargs="+", default=TRAIN_SETS, choices=TRAIN_SETS)
    args = parser.parse_args(argv)
    runs = list(grid(args.models, args.losses, args.train_sets))
    for i, (name, overrides) in enumerate(runs, 1):
        print(f"== [{i}/{len(runs)}] {args.preset} {name}", flush=True)
        cfg = load_config(HERE / "configs" / "base.yaml", args.preset, overrides)
        rec = run_experiment(cfg, Path(args.out) / args.preset / name, args.data)
        print("   " + "  ".join(f"{k} {100 * m['accuracy']:.2f}%" for k, m in rec["metrics"].items()), flush=True)


if __name__ == "__main__":
    main()
