"""Every run behind seed 002's Fig 1, Fig 2 and results table, members shared between rows.

    python -m ee443_stacking.grid --preset smoke --data DIR [--list]

Phase 1 sweeps batch size x learning rate of EfficientNet-B0 + CE per dataset (Fig 2) and the
architectures of Fig 1. Phase 2 uses each dataset's best sweep point for artificial balancing,
the weighted losses, the bagging learners and the stacking members. Phase 3 averages members'
saved test predictions into the ensembles (nothing is trained). A run is named by what it
trains (``<dataset>/<model>__<variant>__bs<batch>_lr<lr>``), so a member two rows share, or the
sweep's best run that is also the baseline and a stacking member, is trained once.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Annotated

from pydantic import PositiveFloat, PositiveInt, ValidationError

from common.config import (ConfigError, Section, check_preset, deep_merge, load_config, one_of, parse_overrides,
                           preset_names, read_config_file)
from common.derived import average_ensemble
from common.experiment import RUN_ERRORS, build_datasets
from common.grid import Job, add_grid_arguments, preflight_weights, run_jobs
from common.losses.weights import SCHEMES
from common.models import MODELS

HERE = Path(__file__).parent
BASE = HERE / "configs" / "base.yaml"
PLAN_FILE = HERE / "configs" / "grid.yaml"
IMBALANCE = {"full": None, "0.1": 0.1, "0.02": 0.02, "0.005": 0.005}
FETCH_HINT = ("On a machine with network build each model once with pretrained weights (e.g. `python -c \"from "
              "common.models import build_model; build_model('efficientnet_b1', 50, pretrained=True)\"`) and copy "
              "the caches listed above to this machine (or set TORCH_HOME / HF_HOME).")


class Sweep(Section):
    batch_size: list[PositiveInt]
    lr: list[PositiveFloat]


class GridPlan(Section):
    """``configs/grid.yaml`` under one preset."""
    datasets: list[Annotated[str, one_of(IMBALANCE, "dataset")]]
    sweep: Sweep
    balance_thresholds: list[PositiveInt]
    weight_schemes: list[Annotated[str, one_of(SCHEMES, "weighting scheme")]]
    bag_threshold: PositiveInt
    stack: list[Annotated[str, one_of(MODELS, "model")]]
    fig1_models: list[Annotated[str, one_of(MODELS, "model")]]


def grid_plan(preset: str) -> GridPlan:
    raw, presets = read_config_file(PLAN_FILE)
    check_preset(preset, list(presets), str(PLAN_FILE))
    try:
        return GridPlan.model_validate(deep_merge(raw, presets[preset]))
    except ValidationError as err:
        raise ConfigError(f"{PLAN_FILE} (preset {preset}): {err}") from err


def hp_tag(bs: int, lr: float) -> str:
    return f"bs{bs}_lr{lr:g}"


def job(preset: str, out: Path, ds: str, model: str, variant: str, hp: tuple, cli: dict, **sections) -> Job:
    """One run: dataset ``ds``, ``model``, a variant (``ce``, ``ab<t>``, ``wl_<scheme>``, ``bag<k>_wl_ins``)
    and the batch size / learning rate ``hp``."""
    name = f"{ds}/{model}__{variant}__{hp_tag(*hp)}"
    overrides = deep_merge({"data": {"imb_factor": IMBALANCE[ds]}, "model": {"name": model},
                            "train": {"batch_size": hp[0], "lr": hp[1]}}, sections)
    return Job(name, load_config(BASE, preset, overrides, cli), out / name)


def sweep_jobs(preset, out, plan: GridPlan, cli) -> list[Job]:
    """Phase 1: Fig 2's sweep on every dataset and Fig 1's architectures on the full set."""
    base = load_config(BASE, preset, None, cli).train
    jobs = [job(preset, out, ds, "efficientnet_b0", "ce", hp, cli)
            for ds in plan.datasets for hp in itertools.product(plan.sweep.batch_size, plan.sweep.lr)]
    if "full" in plan.datasets:
        jobs += [job(preset, out, "full", m, "ce", (base.batch_size, base.lr), cli) for m in plan.fig1_models]
    return list({j.name: j for j in jobs}.values())          # a Fig 1 run at a sweep point is one run


def best_point(records: dict, ds: str, plan: GridPlan) -> tuple:
    """The sweep point with the best test accuracy (the seed's selection: CIFAR-50 has no validation split)."""
    points = list(itertools.product(plan.sweep.batch_size, plan.sweep.lr))
    return max(points, key=lambda hp: records[f"{ds}/efficientnet_b0__ce__{hp_tag(*hp)}"]["metrics"]["test"]["accuracy"])


def learners(preset, ds, plan: GridPlan, data_root, cli) -> int:
    """Seed 002's number of bagging learners: the largest class count // the threshold."""
    cfg = load_config(BASE, preset, {"data": {"imb_factor": IMBALANCE[ds]}}, cli)
    return max(1, max(build_datasets(cfg.data, data_root)["train_counts"]) // plan.bag_threshold)


def method_jobs(preset, out, ds, hp, plan: GridPlan, n_learners: int, cli) -> dict[str, list[Job]]:
    """Phase 2 for one long-tailed dataset, by row; the members of the ensembles included."""
    b0 = "efficientnet_b0"
    wl = {"loss": {"name": "wce", "scheme": "ins"}}
    rows = {
        "artificial_balancing": [job(preset, out, ds, b0, f"ab{t}", hp, cli, data={"balance_threshold": t})
                                 for t in plan.balance_thresholds],
        "weighted_loss": [job(preset, out, ds, b0, f"wl_{s}", hp, cli, loss={"name": "wce", "scheme": s})
                          for s in plan.weight_schemes],
        "bagging_wl": [job(preset, out, ds, b0, f"bag{k}_wl_ins", hp, cli, **wl,
                           data={"bag_threshold": plan.bag_threshold, "bag_index": k}) for k in range(n_learners)],
        "stacking": [job(preset, out, ds, m, "ce", hp, cli) for m in plan.stack],
        "stacking_wl": [job(preset, out, ds, m, "wl_ins", hp, cli, **wl) for m in plan.stack],
    }
    return rows


ENSEMBLES = ("bagging_wl", "stacking", "stacking_wl")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, choices=preset_names(BASE))
    parser.add_argument("--data", default=None)
    add_grid_arguments(parser, "results/ee443_stacking/runs")
    parser.add_argument("--list", action="store_true", help="print phase 1's runs and how many phase 2 adds; train nothing")
    args = parser.parse_args(argv)
    if args.set and args.out == parser.get_default("out"):
        parser.error("--set changes the protocol: give a separate --out so the preset's results stay clean")
    out = Path(args.out) / args.preset
    try:
        cli, plan = parse_overrides(args.set), grid_plan(args.preset)
        phase1 = sweep_jobs(args.preset, out, plan, cli)
        if args.list:
            print("\n".join(j.name for j in phase1))
            return
        preflight_weights([j.config for j in phase1], FETCH_HINT)
        records = run_jobs(phase1, args.data, progress=args.preset != "smoke", rerun_stale=args.rerun_stale)
        chosen = {}
        for ds in plan.datasets:
            hp = chosen[ds] = best_point(records, ds, plan)
            print(f"== {ds}: best sweep point batch {hp[0]}, lr {hp[1]:g}", flush=True)
            if ds == "full":            # the seed's Full row has the baseline only
                continue
            rows = method_jobs(args.preset, out, ds, hp, plan, learners(args.preset, ds, plan, args.data, cli), cli)
            jobs = list({j.name: j for js in rows.values() for j in js}.values())     # shared members once
            run_jobs(jobs, args.data, progress=args.preset != "smoke", rerun_stale=args.rerun_stale)
            for row in ENSEMBLES:
                print(f"== {ds}/{row}", flush=True)
                rec = average_ensemble(out / ds / row, {j.name: j.out_dir for j in rows[row]})
                print(f"   test {100 * rec['metrics']['test']['accuracy']:.2f}%", flush=True)
        (out / "chosen.json").write_text(json.dumps({ds: {"batch_size": bs, "lr": lr} for ds, (bs, lr) in chosen.items()},
                                                    indent=1))
    except RUN_ERRORS as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
