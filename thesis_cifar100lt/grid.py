"""The thesis grid: 4 models x 7 losses x 2 training sets = 56 runs, in one process, resumably.

    python -m thesis_cifar100lt.grid --preset smoke --data DIR [--models ...] [--losses ...] [--only 'resnet50__*']
    python -m thesis_cifar100lt.grid --preset paper --plan   # list + time estimate; needs no data
    python -m thesis_cifar100lt.grid --preset paper --data DIR --show-config --models resnet50

Before anything trains (presets with pretrained weights) every model is built once with its
ImageNet weights, so a machine without network stops at once with the list of weight files
it needs and the cache paths to put them in (``python -m thesis_cifar100lt.fetch_weights``
fills those caches on a machine with network).
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import yaml

from common.cli import ArgumentParser
from common.config import load_config, parse_overrides, preset_names
from common.engine import default_device
from common.datasets import thesis_split_from_config
from common.experiment import RUN_ERRORS
from common.grid import (Job, add_grid_arguments, add_selection_arguments, probe_line, probe_throughput, run_jobs,
                         seed_plan, select, total_line, training_flops)
from common.grid import preflight_weights as grid_preflight
from common.losses import LOSSES as REGISTERED_LOSSES
from common.models import build_model
from common.profiling import forward_flops

HERE = Path(__file__).parent
BASE_CONFIG = HERE / "configs" / "base.yaml"
MODELS = ["resnet50", "mobilenet_v2", "convnext_base", "vit_base_patch16_224"]
LOSSES = ["ce", "focal", "wce", "cb", "bs", "seql", "ldam"]
TRAIN_SETS = ["balanced", "long_tailed"]
GRID_KEYS = [("model", "name"), ("loss", "name"), ("data", "train_set"), ("train", "seed")]   # set per run
MODEL_KWARGS = {"vit_base_patch16_224": {"dynamic_img_size": True}}  # inputs below 224 px in smoke / quick


def grid(models=MODELS, losses=LOSSES, train_sets=TRAIN_SETS):
    """``(run name, config overrides)`` for every cell, in run order."""
    for model, train_set, loss in itertools.product(models, train_sets, losses):
        overrides = {"model": {"name": model, "kwargs": MODEL_KWARGS.get(model, {})},
                     "loss": {"name": loss}, "data": {"train_set": train_set}}
        yield f"{model}__{loss}__{train_set}", overrides


def config(preset: str, overrides: dict, cli: dict | None = None):
    """One run's validated config: the base file, the preset, the run's cell, then ``--set``."""
    return load_config(BASE_CONFIG, preset, overrides, cli)


FETCH_HINT = ("On a machine with network run `python -m thesis_cifar100lt.fetch_weights` and copy the torch hub "
              "and Hugging Face caches listed above to this machine (or set TORCH_HOME / HF_HOME).")


def preflight_weights(preset: str, models, cli: dict | None = None) -> None:
    """Build each model with its pretrained weights now; on failure name every missing file."""
    grid_preflight([config(preset, {"model": {"name": m, "kwargs": MODEL_KWARGS.get(m, {})}}, cli) for m in models],
                   FETCH_HINT)


VAL_IMAGES = 10000   # the official CIFAR-100 test set, validated on every epoch


def _split_sizes(cfg) -> dict:
    """Image counts of the run's training sets and of its final evaluation (validation + tests)."""
    split = thesis_split_from_config(np.repeat(np.arange(100), 500), 100, cfg.data)
    return {"balanced": len(split["train"]), "long_tailed": len(split["lt_train"]),
            "eval": VAL_IMAGES + len(split["test"]) + len(split["lt_test"])}


def plan(preset: str, runs, device, cli: dict | None = None) -> None:
    """Print each run with its estimated time (from a throughput probe on ``device`` of each
    model's first run, on a CPU at a small batch: bounded memory; the losses cost alike) and compute
    (forward FLOPs x 3 per training image, x 1 per evaluated image). Sizes come from the split's
    definition: no data needed."""
    probes, total_s, total_flops = {}, 0.0, 0.0
    print(f"plan: preset {preset}, {len(runs)} runs, device {device}")
    for name, overrides in runs:
        cfg = config(preset, overrides, cli)
        model_name, train_set, epochs = cfg.model.name, cfg.data.train_set, cfg.train.epochs
        size = cfg.train.size or 32
        if (model_name, size) not in probes:
            model = build_model(model_name, 100, **cfg.model.kwargs).to(device)
            flops = forward_flops(model, size)
            train_ips, eval_ips = probe_throughput(model, cfg, device)
            probes[model_name, size] = train_ips, eval_ips, flops
            print(f"{probe_line(cfg, device, train_ips, eval_ips)}, {flops / 1e9:.2f} GFLOPs per forward", flush=True)
            del model
        train_ips, eval_ips, flops = probes[model_name, size]
        sizes = _split_sizes(cfg)
        trained, evaluated = epochs * sizes[train_set], epochs * VAL_IMAGES + sizes["eval"]
        seconds = trained / train_ips + evaluated / eval_ips
        run_flops = training_flops(flops, trained, evaluated)
        total_s, total_flops = total_s + seconds, total_flops + run_flops
        print(f"  {name:45s} {epochs:3d} epochs ~{seconds / 3600:8.2f} h  {run_flops / 1e15:9.3g} PFLOP", flush=True)
    print(total_line(total_s, total_flops, device, " (validation every epoch included)"))


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, choices=preset_names(BASE_CONFIG))
    parser.add_argument("--data", default=None, help="folder holding cifar-100-python/ (default: $LTREPRO_DATA or "
                        "./data); --plan, --list and --show-config need none")
    add_grid_arguments(parser, "results/thesis_cifar100lt/runs")
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--losses", nargs="+", default=LOSSES, choices=sorted(REGISTERED_LOSSES),
                        help="default: the thesis's seven; any loss registered in common.losses runs beside them")
    parser.add_argument("--train-sets", nargs="+", default=TRAIN_SETS, choices=TRAIN_SETS)
    add_selection_arguments(parser)
    parser.add_argument("--plan", action="store_true", help="list the runs with a time estimate; train nothing")
    parser.add_argument("--show-config", action="store_true", help="print each run's resolved config; train nothing")
    args = parser.parse_args(argv)
    try:
        cli = parse_overrides(args.set)
        fixed = [f"{section}.{key}" for section, key in GRID_KEYS if key in cli.get(section, {})]
        if fixed:
            parser.error(f"--set cannot change {', '.join(fixed)}: the grid sets it per run (use --models / --losses / "
                         f"--train-sets / --seeds)")
        runs = list(grid(args.models, args.losses, args.train_sets))
        names = select([name for name, _ in runs], args.only)
        runs = [(name, overrides) for name, overrides in runs if name in names]
        if args.list:
            print("\n".join(names))
            return
        configs = {name: config(args.preset, overrides, cli) for name, overrides in runs}   # all checked up front
        if args.show_config:
            for name, cfg in configs.items():
                print(f"# {name}\n" + yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
            return
        if args.plan:
            plan(args.preset, runs, default_device(), cli)
            return
        if args.set and args.out == parser.get_default("out"):
            parser.error("--set changes the protocol: give a separate --out so the preset's results stay clean")
        preflight_weights(args.preset, args.models, cli)
        seeds = seed_plan(args.out, args.preset, args.seeds, config(args.preset, {}).train.seed, cli)
        jobs = [Job(name, config(args.preset, overrides, seed_cli), root / name)
                for root, seed_cli in seeds for name, overrides in runs]
        run_jobs(jobs, args.data, progress=args.preset != "smoke", rerun_stale=args.rerun_stale)
    except RUN_ERRORS as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
