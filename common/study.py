"""What a study declares, and the two commands every study shares.

A study folder declares its runs once, in ``grid.py``, as a :class:`Study`: its config files,
``jobs(preset, root, cli, args)`` (every run of a preset, resolved, in training order) and a
run plan. The shared command line is :func:`grid_main` (``python -m <study>.grid``): presets,
``--data``, ``--out``, ``--set``, ``--seeds``, ``--only``, ``--list``, ``--plan``,
``--show-config``, ``--fetch-weights`` and ``--skip-missing-data`` mean the same in every study.
``report.py`` writes the study's tables from one preset's records through :func:`report_main`
(``python -m <study>.report``), which also rewrites ``results/README.md``.

A study's own pieces plug in as hooks: extra options (``options``), a training pass other than
"run every selected job" (``train``: seed 002's phases), runs derived from others without
training (``derived``: seed 000's tau-normalisation rows), a line per finished run (``describe``).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import pandas as pd
import yaml

from .claims import write_claims
from .cli import ArgumentParser, reader_may_leave
from .config import ConfigError, load_config, parse_overrides, preset_names
from .data.cifar import LAYOUTS, default_data_root, missing_files
from .engine import default_device
from .experiment import RUN_ERRORS
from .grid import (Job, accuracies, add_grid_arguments, add_selection_arguments, preflight_weights, run_jobs,
                   seed_plan, select)
from .report import load_paper_numbers, report_parser
from .results_index import write_results_index
from .runstore import run_state, seed_roots


@dataclass(frozen=True)
class Run:
    """One run of a grid: its name (its folder under the preset's results), the config file it
    starts from and the grid's overrides for it."""
    name: str
    file: Path
    overrides: dict = field(default_factory=dict)

    def job(self, preset: str, root: Path, cli: dict | None = None) -> Job:
        return Job(self.name, load_config(self.file, preset, self.overrides, cli), Path(root) / self.name)


@dataclass
class GridPass:
    """One pass of a study's grid over one results folder (one training seed)."""
    study: "Study"
    preset: str
    root: Path               # OUT/<preset> or OUT/<preset>@seedS
    cli: dict                # --set, with this pass's seed
    jobs: list[Job]          # the selected runs, in ``root``
    args: argparse.Namespace

    def run_jobs(self, jobs: list[Job] | None = None) -> dict[str, dict]:
        a = self.args
        return run_jobs(self.jobs if jobs is None else jobs, a.data, progress=self.preset != "smoke",
                        rerun_stale=a.rerun_stale, describe=self.study.describe)


@dataclass(frozen=True)
class Study:
    name: str                                   # the package, and results/<name>/
    folder: Path                                # the study's folder: its paper_numbers.csv
    description: str                            # the grid's first docstring line
    config_files: tuple[Path, ...]              # the presets they all define are the choices
    jobs: Callable[[str, Path, dict, argparse.Namespace], list[Job]]
    plan: Callable[[str, list[Job], object], None]   # (preset, selected jobs, device): print an estimate
    what: str = "run"                           # what --only selects, as the help and errors say
    options: Callable[[ArgumentParser], None] | None = None
    fixed_keys: tuple[str, ...] = ()            # "section.key" the grid sets per run: --set may not
    train: Callable[[GridPass], None] = GridPass.run_jobs
    derived: dict[str, Callable[[Path, object], dict]] = field(default_factory=dict)  # name -> (root, data) -> record
    describe: Callable[[dict], str] = accuracies
    fetch_hint: str = ("On a machine with network run `python -m {name}.grid --preset {preset} --fetch-weights` and "
                       "copy the caches listed above to this machine (or set TORCH_HOME / HF_HOME).")

    @property
    def results(self) -> Path:
        return Path("results") / self.name

    def presets(self) -> list[str]:
        return preset_names(*self.config_files)

    def own_seed(self, preset: str, args=None) -> int:
        """The training seed of the configs themselves (their runs go to ``<preset>/``, not ``@seedS``)."""
        return self.jobs(preset, Path("."), {}, args or argparse.Namespace())[0].config.train.seed


def grid_parser(study: Study) -> ArgumentParser:
    parser = ArgumentParser(description=study.description)
    parser.add_argument("--preset", required=True, choices=study.presets())
    parser.add_argument("--data", default=None, help="folder holding the CIFAR files (default: $LTREPRO_DATA or "
                                                     "./data); --list, --plan and --show-config need none")
    add_grid_arguments(parser, str(study.results / "runs"))
    add_selection_arguments(parser, study.what)
    parser.add_argument("--plan", action="store_true",
                        help="list the runs with a time estimate, each with where it stands, and how much is left; "
                             "needs no data, trains nothing")
    parser.add_argument("--show-config", action="store_true", help="print each run's resolved config; train nothing")
    parser.add_argument("--fetch-weights", action="store_true",
                        help="download the pretrained weights the runs need into the caches; train nothing")
    parser.add_argument("--skip-missing-data", action="store_true",
                        help="train only the runs whose dataset is in --data; one line per dataset that is not "
                             "(run_all.sh: an offline machine without CIFAR-100)")
    if study.options:
        study.options(parser)
    return parser


def grid_main(study: Study, argv=None) -> None:
    """``python -m <study>.grid``: every selected run of a preset, trained once, resumably."""
    parser = grid_parser(study)
    args = parser.parse_args(argv)
    try:
        cli = parse_overrides(args.set)
        fixed = [key for key in study.fixed_keys if key.partition(".")[2] in cli.get(key.partition(".")[0], {})]
        if fixed:
            parser.error(f"--set cannot change {', '.join(fixed)}: the grid sets it per run")
        out = Path(args.out)
        every = study.jobs(args.preset, out / args.preset, cli, args)
        names = select([j.name for j in every] + list(study.derived), args.only, study.what)
        jobs = [j for j in every if j.name in names]
        own_seed = every[0].config.train.seed        # --set cannot change it beside --seeds (seed_plan refuses)
        if args.list:
            with reader_may_leave():
                print_states(study, args, out, cli, names)
            return
        if args.show_config:
            for job in jobs:
                print(f"# {job.name}\n" + yaml.safe_dump(job.config.model_dump(mode="json"), sort_keys=False))
            return
        if args.plan:       # one plan over every seed's runs, named as --list names them
            passes = seed_passes(study, args, out, cli, jobs, names, own_seed)
            with reader_may_leave():
                study.plan(args.preset, [replace(j, name=f"{root.name}/{j.name}") if args.seeds else j
                                         for root, _, selected in passes for j in selected], default_device())
            return
        hint = study.fetch_hint.format(name=study.name, preset=args.preset)
        if args.fetch_weights:
            preflight_weights([j.config for j in jobs], hint)
            print("the pretrained weights of these runs are in the caches" if any(j.config.model.pretrained for j in jobs)
                  else "these runs use no pretrained weights")
            return
        if args.set and args.out == parser.get_default("out"):
            parser.error("--set changes the protocol: give a separate --out so the preset's results stay clean")
        if args.skip_missing_data:
            jobs = with_data(jobs, args.data)
            names = [j.name for j in jobs] + [n for n in names if n in study.derived]
            if not jobs:
                sys.exit("error: nothing to train: the dataset of every selected run is missing")
        preflight_weights([j.config for j in jobs], hint)
        for root, seed_cli, selected in seed_passes(study, args, out, cli, jobs, names, own_seed):
            study.train(GridPass(study, args.preset, root, seed_cli, selected, args))
            for name in (n for n in study.derived if n in names):
                print(f"== {root.name}/{name}", flush=True)
                print("   " + study.describe(study.derived[name](root, args.data)), flush=True)
    except RUN_ERRORS as err:
        sys.exit(f"error: {err}")


def seed_passes(study: Study, args, out: Path, cli: dict, jobs: list[Job], names: list[str], own_seed: int):
    """(results root, its ``--set`` overrides, its selected jobs) per training seed of ``--seeds``
    (one pass, ``jobs``, without); ``jobs`` were resolved in the configs' own root, whose seed is
    ``own_seed``."""
    for root, seed_cli in seed_plan(out, args.preset, args.seeds, own_seed, cli):
        same = (root, seed_cli) == (out / args.preset, cli)
        yield root, seed_cli, (jobs if same else
                               [j for j in study.jobs(args.preset, root, seed_cli, args) if j.name in names])


def print_states(study: Study, args, out: Path, cli: dict, names: list[str]) -> None:
    """``--list``: one line per selected run and training seed, with where it stands (:func:`run_state`)."""
    own_seed = study.own_seed(args.preset, args)
    for root, seed_cli in seed_plan(out, args.preset, args.seeds, own_seed, cli):
        configs = {j.name: j.config for j in study.jobs(args.preset, root, seed_cli, args)}
        width = max(map(len, names))
        for name in names:
            label = name if args.seeds is None else f"{root.name}/{name}"
            print(f"{label:<{width + (len(root.name) + 1 if args.seeds else 0)}}  "
                  f"{run_state(root / name, configs.get(name))}")


def with_data(jobs: list[Job], data_root) -> list[Job]:
    """The jobs whose dataset's files are in ``data_root``; one line for each dataset that is
    not there (its runs are left out; the tables show dashes for their cells)."""
    root = Path(data_root) if data_root else default_data_root()
    datasets = [j.config.data.dataset for j in jobs]
    missing = [ds for ds in dict.fromkeys(datasets) if missing_files(ds, root)]
    for ds in missing:
        print(f"{ds.upper().replace('CIFAR', 'CIFAR-')} not found in {root / LAYOUTS[ds].folder} (offline?): its "
              f"{datasets.count(ds)} run(s) are skipped; the tables show dashes for them", flush=True)
    return [j for j, ds in zip(jobs, datasets) if ds not in missing]


@dataclass
class ReportInput:
    """What a study's table writer gets: the preset, the paper's numbers, the results folder of
    each training seed (the configs' own seed first) and the folder the tables go to."""
    preset: str
    paper: pd.DataFrame
    roots: dict[str, Path]
    out: Path


@dataclass
class Written:
    """What a study's table writer wrote: one line saying what, the 'ours' cells its tables hold
    (:func:`common.report.combine_seeds`), which the seed's claims are judged on, and the
    ``(table, row, column)`` its tables lay out beyond the paper's numbers (rows beyond the seed)."""
    message: str
    ours: pd.DataFrame
    layout: tuple = ()


def report_main(study: Study, write_tables: Callable[[ReportInput], Written], doc: str, argv=None) -> None:
    """``python -m <study>.report``: the study's tables from one preset's records, the verdicts
    on the seed's claims (``claims.csv`` beside ``paper_numbers.csv``), then ``results/README.md``."""
    args = report_parser(doc, study.presets(), study.results).parse_args(argv)
    try:
        roots = seed_roots(args.results / "runs", args.preset, args.seeds, study.own_seed(args.preset))
    except ConfigError as err:
        sys.exit(f"error: {err}")
    out = args.results / args.preset
    out.mkdir(parents=True, exist_ok=True)
    paper = load_paper_numbers(study.folder / "paper_numbers.csv")
    written = write_tables(ReportInput(args.preset, paper, roots, out))
    write_claims(study.folder / "claims.csv", study.name, args.preset, paper, written.ours, out, written.layout)
    write_results_index(args.results)              # results/README.md: every study's index
    print(f"{written.message} to {out}")
