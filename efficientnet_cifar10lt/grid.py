"""Every row of seed 000's comparison, and the decoupling baselines of Kang et al. 2020 beside it.

    python -m efficientnet_cifar10lt.grid --preset smoke --data DIR [--only ROW ...] [--list] [--plan]

Stage 1 is one run; every stage-2 row starts from its kept weights and never retrains it.
tau-normalisation trains nothing: it rescales stage 1's classifier (``posthoc.py``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from common.cli import ArgumentParser
from common.config import load_config, parse_overrides, preset_names
from common.data import longtail_counts
from common.engine import default_device
from common.experiment import RUN_ERRORS
from common.grid import (Job, accuracies, add_grid_arguments, add_selection_arguments, preflight_weights,
                         probe_line, probe_throughput, run_jobs, seed_plan, select, total_line, training_flops)
from common.models import build_model
from common.profiling import forward_flops

from .posthoc import TAU_ROWS, run_tau_norm

HERE = Path(__file__).parent
CONFIGS = tuple(HERE / "configs" / f for f in ("base.yaml", "stage1.yaml", "stage2.yaml"))
FETCH_HINT = ("On a machine with network run `python -m efficientnet_cifar10lt.grid --fetch-weights` and copy the "
              "Hugging Face cache listed above to this machine (or set HF_HOME).")
SEED_LOSSES = {"wce": "Modified CE", "bs": "Balanced Softmax", "focal": "Focal", "cb": "Class-Balanced",
               "cb_focal": "CB-Focal"}


@dataclass(frozen=True)
class Row:
    name: str
    config: str              # file in configs/
    overrides: dict
    label: str               # as the tables show it
    in_seed: bool = True     # False: beyond the seed (Kang et al. 2020), marked as such


BALANCED = {"data": {"sampler": "class_balanced"}}
# Cui et al. start a fresh classifier of a sigmoid loss at a prior of 0.1 per class
FRESH_HEAD = {"cb_focal": {"model": {"classifier_prior": 0.1}}}
ROWS = [
    Row("baseline", "base.yaml", {}, "Baseline (CE)"),
    Row("reweight", "base.yaml", BALANCED, "Reweight (WeightedRandomSampler)"),
    Row("baseline_adamw", "base.yaml", {"train": {"optimizer": "adamw", "weight_decay": 0.9999}},
        "Baseline (CE), AdamW with decoupled weight decay 0.9999", in_seed=False),
    Row("stage1", "stage1.yaml", {}, "Decoupled stage 1 alone (CE)", in_seed=False),
    *[Row(f"decoupled_{loss}", "stage2.yaml", {"loss": {"name": loss}, **FRESH_HEAD.get(loss, {})}, f"Decoupled + {label}")
      for loss, label in SEED_LOSSES.items()],
    Row("crt", "stage2.yaml", BALANCED, "cRT (class-balanced sampling + CE)", in_seed=False),
    Row("lws", "stage2.yaml", {**BALANCED, "model": {"reset_classifier": False, "lws": True}},
        "LWS (learnable weight scaling)", in_seed=False),
]
ROW_LABELS = {r.name: r.label for r in ROWS} | {name: label for name, label in TAU_ROWS.items()}
IN_SEED = {r.name for r in ROWS if r.in_seed}


def run_config(row: Row, preset: str, cli: dict | None = None):
    return load_config(HERE / "configs" / row.config, preset, row.overrides, cli)


def plan(preset: str, rows, device, cli=None) -> None:
    """Each run with an estimate from a probe of the model's training step and evaluation on
    ``device`` (on a CPU at a small batch: bounded memory). The classifier-only rows of one
    stage-1 run share one stored pass of its backbone over the training and test sets
    (``common.features``): the first pays it, the classifier epochs are negligible. Sizes from
    the long-tailed profile: no data needed."""
    probes, total, total_flops, passes = {}, 0.0, 0.0, set()
    print(f"plan: preset {preset}, {len(rows)} runs (+ tau-normalisation), device {device}")
    for row in rows:
        cfg = run_config(row, preset, cli)
        train_images = sum(longtail_counts(5000, 10, cfg.data.imb_factor, cfg.data.profile,
                                           min_count=cfg.data.min_count))
        if cfg.train.size not in probes:
            model = build_model(cfg.model.name, 10).to(device)
            train_ips, eval_ips = probe_throughput(model, cfg, device)
            probes[cfg.train.size] = train_ips, eval_ips, forward_flops(model, cfg.train.size or 32)
            del model
            print(probe_line(cfg, device, train_ips, eval_ips), flush=True)
        train_ips, eval_ips, flops = probes[cfg.train.size]
        if cfg.train.classifier_only:
            first = cfg.model.init_from not in passes
            passes.add(cfg.model.init_from)
            seconds = (train_images + 10000) / eval_ips if first else 0.0
            total_flops += training_flops(flops, 0, train_images + 10000) if first else 0.0
        else:
            seconds = cfg.train.epochs * train_images / train_ips + 10000 / eval_ips   # + the test set
            total_flops += training_flops(flops, cfg.train.epochs * train_images, 10000)
        total += seconds
        print(f"  {row.name:20s} {cfg.train.epochs:3d} epochs ~{seconds / 3600:7.2f} h", flush=True)
    print(total_line(total, total_flops, device))


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, choices=preset_names(*CONFIGS))
    parser.add_argument("--data", default=None)
    add_grid_arguments(parser, "results/efficientnet_cifar10lt/runs")
    add_selection_arguments(parser, "row")
    parser.add_argument("--plan", action="store_true", help="list the runs with a time estimate; train nothing")
    parser.add_argument("--fetch-weights", action="store_true",
                        help="download the pretrained weights the preset needs into the cache; train nothing")
    args = parser.parse_args(argv)
    try:
        names = select([r.name for r in ROWS] + list(TAU_ROWS), args.only, "row")
        rows = [r for r in ROWS if r.name in names]
        if args.list:
            print("\n".join(names))
            return
        if args.set and args.out == parser.get_default("out"):
            parser.error("--set changes the protocol: give a separate --out so the preset's results stay clean")
        cli = parse_overrides(args.set)
        if args.plan:
            plan(args.preset, rows, default_device(), cli)
            return
        if args.fetch_weights:
            cfg = run_config(ROWS[0], args.preset, cli)
            build_model(cfg.model.name, 10, pretrained=cfg.model.pretrained)
            print(f"{cfg.model.name}: weights cached" if cfg.model.pretrained else "this preset uses no pretrained weights")
            return
        seeds = seed_plan(args.out, args.preset, args.seeds, run_config(ROWS[0], args.preset).train.seed, cli)
        jobs = [Job(r.name, run_config(r, args.preset, seed_cli), root / r.name) for root, seed_cli in seeds for r in rows]
        preflight_weights([job.config for job in jobs], FETCH_HINT)
        run_jobs(jobs, args.data, progress=args.preset != "smoke", rerun_stale=args.rerun_stale)
        for root, _ in seeds:
            for name in TAU_ROWS:
                if name in names:
                    print(f"== {root.name}/{name}", flush=True)
                    print("   " + accuracies(run_tau_norm(name, root, args.data)), flush=True)
    except RUN_ERRORS as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
