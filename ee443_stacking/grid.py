"""Every run behind seed 002's Fig 1, Fig 2 and results table, members shared between rows.

    python -m ee443_stacking.grid --preset smoke --data DIR [--only PATTERN ...] [--list | --plan]

Phase 1 sweeps batch size x learning rate of EfficientNet-B0 + CE per dataset (Fig 2) and the
architectures of Fig 1. Phase 2 uses each dataset's best sweep point for artificial balancing,
the weighted losses, the bagging learners and the stacking members (and, beyond the seed, the
members' cross-fitting fold runs). Phase 3 combines members' saved predictions into the
ensembles, training nothing: the seed's mean of softmax outputs, and a learned stacker. A run is
named by what it trains (``<dataset>/<model>__<variant>__bs<batch>_lr<lr>``), so a member two
rows share, or the sweep's best run that is also the baseline and a stacking member, is trained once.
"""
from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Annotated

from pydantic import NonNegativeInt, PositiveFloat, PositiveInt, ValidationError

from common.config import ConfigError, Section, check_preset, deep_merge, load_config, one_of, read_config_file
from common.data.cifar import default_data_root
from common.datasets import build_datasets, planned_training_indices
from common.derived import average_ensemble, stacked_ensemble
from common.grid import Job, matching, print_plan
from common.losses.weights import SCHEMES
from common.models import MODELS
from common.runstore import read_record
from common.study import GridPass, Study, grid_main

HERE = Path(__file__).parent
BASE = HERE / "configs" / "base.yaml"
PLAN_FILE = HERE / "configs" / "grid.yaml"
IMBALANCE = {"full": None, "0.1": 0.1, "0.02": 0.02, "0.005": 0.005}


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
    base_model: Annotated[str, one_of(MODELS, "model")]     # the seed's b0: sweeps and single-model rows
    stack: list[Annotated[str, one_of(MODELS, "model")]]
    stacker_folds: NonNegativeInt        # beyond the seed: cross-fitting folds of the learned stacker (0: none)
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


def job(preset: str, out: Path, ds: str, model: str, variant: str, hp: tuple, cli: dict, fold: tuple | None = None,
        **sections) -> Job:
    """One run: dataset ``ds``, ``model``, a variant (``ce``, ``ab<t>``, ``wl_<scheme>``, ``bag<k>_wl_ins``)
    and the batch size / learning rate ``hp``; ``fold = (i, k)``: trained without fold i of k (``<ds>/folds/``)."""
    name = f"{ds}/{model}__{variant}__{hp_tag(*hp)}"
    data = {"imb_factor": IMBALANCE[ds]}
    if fold:
        name = f"{ds}/folds/{model}__{variant}__{hp_tag(*hp)}__fold{fold[0]}of{fold[1]}"
        data |= {"fold": fold[0], "folds": fold[1]}
    overrides = deep_merge({"data": data, "model": {"name": model}, "train": {"batch_size": hp[0], "lr": hp[1]}},
                           sections)
    return Job(name, load_config(BASE, preset, overrides, cli), out / name)


def sweep_jobs(preset, out, plan: GridPlan, cli) -> list[Job]:
    """Phase 1: Fig 2's sweep on every dataset and Fig 1's architectures on the full set."""
    base = load_config(BASE, preset, None, cli).train
    jobs = [job(preset, out, ds, plan.base_model, "ce", hp, cli)
            for ds in plan.datasets for hp in itertools.product(plan.sweep.batch_size, plan.sweep.lr)]
    if "full" in plan.datasets:
        jobs += [job(preset, out, "full", m, "ce", (base.batch_size, base.lr), cli) for m in plan.fig1_models]
    return list({j.name: j for j in jobs}.values())          # a Fig 1 run at a sweep point is one run


def selection_set(records) -> str:
    """What sweep points are chosen on: ``validation`` (the held-out ``data.val_per_class``
    images) when every run has it, else ``test``, the seed's own selection, an optimistic oracle."""
    return "validation" if all("validation" in r["metrics"] for r in records) else "test"


def best_of(records: dict, on: str | None = None) -> str:
    """The name of the record with the best accuracy on ``on`` (default :func:`selection_set`);
    ties go to the first."""
    on = on or selection_set(records.values())
    return max(records, key=lambda name: records[name]["metrics"][on]["accuracy"])


def best_point(records: dict, ds: str, plan: GridPlan) -> tuple:
    """The sweep point of ``ds`` chosen by :func:`best_of`."""
    points = {f"{ds}/{plan.base_model}__ce__{hp_tag(*hp)}": hp
              for hp in itertools.product(plan.sweep.batch_size, plan.sweep.lr)}
    return points[best_of({name: records[name] for name in points})]


def learners(preset, ds, plan: GridPlan, cli, data_root=None) -> int:
    """Seed 002's number of bagging learners: the largest class count // the threshold, of the
    data in ``data_root``, or of the official files' sizes when None (plans)."""
    dcfg = load_config(BASE, preset, {"data": {"imb_factor": IMBALANCE[ds]}}, cli).data
    counts = (planned_training_indices(dcfg) if data_root is None else build_datasets(dcfg, data_root))["group_counts"]
    return max(1, max(counts) // plan.bag_threshold)


def method_jobs(preset, out, ds, hp, plan: GridPlan, n_learners: int, cli) -> dict[str, list[Job]]:
    """Phase 2 for one long-tailed dataset, by row; the members of the ensembles included."""
    b0 = plan.base_model
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


def fold_jobs(preset, out, ds, hp, plan: GridPlan, cli) -> dict[str, dict[str, list[Job]]]:
    """Beyond the seed: every stacking member once per cross-fitting fold (``<ds>/folds/``), trained
    without that fold of the training set, for the learned stacker's out-of-fold probabilities."""
    k = plan.stacker_folds
    variants = {"stacking": ("ce", {}), "stacking_wl": ("wl_ins", {"loss": {"name": "wce", "scheme": "ins"}})}
    return {row: {f"{ds}/{m}__{variant}__{hp_tag(*hp)}": [job(preset, out, ds, m, variant, hp, cli, (i, k), **sections)
                                                          for i in range(k)] for m in plan.stack}
            for row, (variant, sections) in variants.items()} if k else {}


ENSEMBLES = ("bagging_wl", "stacking", "stacking_wl")
LEARNED = {"stacking": "stacking_learned", "stacking_wl": "stacking_wl_learned"}   # beyond the seed


def all_uses(preset, out, plan: GridPlan, cli, chosen: dict | None = None) -> list[tuple[str, Job]]:
    """(row, run) for every use of a run by a row of the grid: phase 2 of a dataset at its
    ``chosen`` sweep point (:func:`read_chosen`), before its sweep chose at the fixed batch size /
    learning rate (the same counts and sizes as at any point)."""
    base = load_config(BASE, preset, None, cli).train
    hp = (base.batch_size, base.lr)
    chosen = chosen or {}
    uses = [("fig2 sweep", job(preset, out, ds, plan.base_model, "ce", point, cli))
            for ds in plan.datasets for point in itertools.product(plan.sweep.batch_size, plan.sweep.lr)]
    if "full" in plan.datasets:
        uses += [("fig1", job(preset, out, "full", m, "ce", hp, cli)) for m in plan.fig1_models]
    for ds in plan.datasets:
        if ds == "full":
            continue
        point = chosen.get(ds, hp)
        for row, jobs in method_jobs(preset, out, ds, point, plan, learners(preset, ds, plan, cli), cli).items():
            uses += [(row, j) for j in jobs]
        for row, members in fold_jobs(preset, out, ds, point, plan, cli).items():
            uses += [(f"{LEARNED[row]} folds", j) for runs in members.values() for j in runs]
    return uses


def plan(preset, jobs: list[Job], device) -> None:
    """How many trainings the rows share, then every training with its estimate
    (:func:`common.grid.print_plan`; phase 2 at its chosen point, :func:`jobs`)."""
    grids, rows = {}, {}    # the grid at each seed root's chosen points: a training's name -> the rows using it

    def rows_using(j: Job) -> list[str]:
        chosen = next((read_chosen(d) for d in j.out_dir.parents[:3] if (d / "chosen.json").exists()), {})
        key = json.dumps(chosen, sort_keys=True)
        if key not in grids:
            grids[key] = defaultdict(list)
            for row, use in all_uses(preset, Path("out"), grid_plan(preset), {}, chosen):
                grids[key][use.name].append(row)
                rows[row] = None                 # the grid's order of rows
        # with --seeds a training is named SEEDROOT/NAME
        return grids[key].get(j.name) or grids[key].get(j.name.partition("/")[2], [])

    uses = [row for j in jobs for row in rows_using(j)]
    print(f"{len(jobs)} trainings with member reuse, {len(uses)} without (every row training its own members):")
    for row in (r for r in rows if r in uses):
        print(f"  {row:26s} {uses.count(row):3d} uses")
    print_plan(preset, jobs, device)


def run_grid(p: GridPass) -> None:
    """The three phases in ``p.root``: sweeps, then per long-tailed set its methods at the best
    sweep point, then the ensembles; writes ``chosen.json`` (each dataset's best point). With
    ``--only`` (name patterns) just the matching runs train; a later phase goes ahead where the
    runs it needs have finished (trained now or before)."""
    preset, out, cli, data, plan = p.preset, p.root, p.cli, p.args.data, grid_plan(p.preset)

    def train(jobs: list[Job]) -> None:
        jobs = list({j.name: j for j in jobs}.values())            # shared members once
        p.run_jobs(matching(jobs, p.args.only))

    def finished(jobs: list[Job]) -> dict | None:
        paths = {j.name: j.out_dir / "record.json" for j in jobs}
        if not all(p.exists() for p in paths.values()):
            return None
        return {name: read_record(p) for name, p in paths.items()}

    sweep = sweep_jobs(preset, out, plan, cli)
    train(sweep)
    chosen = {}
    for ds in plan.datasets:
        records = finished([j for j in sweep if j.name.startswith(f"{ds}/{plan.base_model}__ce__")])
        if records is None:
            print(f"== {ds}: its sweep has not finished: nothing more for this dataset", flush=True)
            continue
        hp = chosen[ds] = best_point(records, ds, plan)
        on = selection_set(records.values())
        print(f"== {ds}: best sweep point on the {on} set: batch {hp[0]}, lr {hp[1]:g}", flush=True)
        if ds == "full":            # the seed's Full row has the baseline only
            continue
        rows = method_jobs(preset, out, ds, hp, plan, learners(preset, ds, plan, cli, data or default_data_root()), cli)
        folds = fold_jobs(preset, out, ds, hp, plan, cli)
        train([j for js in rows.values() for j in js] + [j for m in folds.values() for js in m.values() for j in js])
        for row in ENSEMBLES:
            if finished(rows[row]) is not None:
                rec = average_ensemble(out / ds / row, {j.name: j.out_dir for j in rows[row]})
                print(f"== {ds}/{row}: test {100 * rec['metrics']['test']['accuracy']:.2f}%", flush=True)
        for row, members in folds.items():
            if finished(rows[row] + [j for runs in members.values() for j in runs]) is not None:
                rec = stacked_ensemble(out / ds / LEARNED[row], {j.name: j.out_dir for j in rows[row]},
                                       {name: [j.out_dir for j in runs] for name, runs in members.items()})
                print(f"== {ds}/{LEARNED[row]}: test {100 * rec['metrics']['test']['accuracy']:.2f}%", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "chosen.json").write_text(json.dumps({ds: {"batch_size": bs, "lr": lr} for ds, (bs, lr) in chosen.items()},
                                                indent=1))     # chosen as selection_set says (the report shows which)


def read_chosen(root: Path) -> dict[str, tuple]:
    """Each dataset's sweep point as ``run_grid`` chose it in ``root`` (``chosen.json``), or none."""
    path = Path(root) / "chosen.json"
    chosen = json.loads(path.read_text()) if path.exists() else {}
    return {ds: (point["batch_size"], point["lr"]) for ds, point in chosen.items()}


def jobs(preset: str, root: Path, cli: dict, args) -> list[Job]:
    """Every training, phase 2 named at the point its sweep chose in ``root`` (the fixed batch size /
    learning rate before it chose)."""
    return list({j.name: j for _, j in all_uses(preset, root, grid_plan(preset), cli, read_chosen(root))}.values())


STUDY = Study("ee443_stacking", HERE, __doc__.splitlines()[0], (BASE,), jobs=jobs, plan=plan,
              train=run_grid)


def main(argv=None):
    grid_main(STUDY, argv)


if __name__ == "__main__":
    main()
