"""One training run from flat flags, or the evaluation of a kept checkpoint.

    python -m common.train --model resnet32 --loss bs --dataset cifar10 --imb-factor 0.02 --epochs 2 --seed 0
    python -m common.train --eval runs/train/RUN            # re-evaluate RUN's kept weights.pt

Every key of every config section is a flag (``--help`` lists them all with their defaults;
a loss's own keywords are ``--loss-KEY``); the flags build the same validated config a study's
YAML file does (:mod:`common.config`), so a typo in a flag, a name or a value stops the run
before any data is read. The run folder (default ``runs/train/<dataset>_<model>_<loss>_s<seed>_<hash>``)
gets ``config.yaml`` (the resolved config) when it starts and, when it finishes, ``record.json``,
``predictions.npz``, ``weights.pt`` and a confusion matrix per test set; the per-class recall
is printed.
"""
from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from collections import Counter
from pathlib import Path

import yaml
from pydantic import AfterValidator
from pydantic.fields import FieldInfo

from .cli import ArgumentParser
from .config import (ConfigError, DataConfig, EvalConfig, LossConfig, ModelConfig, TrainConfig, config_hash,
                     config_record, deep_merge, format_problems, loss_kwargs_schema, parse_overrides, validate_config)
from .evaluation import evaluate_checkpoint
from .experiment import RUN_ERRORS, run_experiment
from .losses import LOSSES
from .report import report_run
from .runstore import read_record

SECTIONS = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig, "eval": EvalConfig}
RENAMED = {("model", "name"): "model", ("model", "kwargs"): "model-kwargs", ("loss", "name"): "loss",
           ("train", "gamma"): "lr-gamma"}
FLAT_DEFAULTS = {"train": {"keep_weights": True}}     # a flat run keeps its weights, for --eval
NONE = {"none", "None", "null", "~"}


def config_flags() -> dict[str, tuple[str, str, FieldInfo | None]]:
    """``--flag`` -> (section, key, field) for every key of every section (a key is its own flag
    unless two sections share it) and ``--loss-KEY`` (field None) for every keyword of every
    registered loss."""
    shared = Counter(key for schema in SECTIONS.values() for key in schema.model_fields)
    flags = {}
    for section, schema in SECTIONS.items():
        for key, field in schema.model_fields.items():
            name = RENAMED.get((section, key)) or (key if shared[key] == 1 else f"{section}-{key}")
            flags["--" + name.replace("_", "-")] = (section, key, field)
    for key in dict.fromkeys(k for name in LOSSES for k in loss_kwargs_schema(name).model_fields):
        flags["--loss-" + key.strip("_").replace("_", "-")] = ("loss", key, None)
    return flags


def _loss_help(key: str) -> str:
    """Which registered losses take keyword ``key``, with their defaults."""
    fields = {name: loss_kwargs_schema(name).model_fields.get(key) for name in LOSSES}
    fields = {name: f for name, f in fields.items() if f is not None}
    shown = {name: "required" if f.is_required() else f"default {f.default}" for name, f in fields.items()}
    if len(fields) == len(LOSSES) and len(set(shown.values())) == 1:
        return f"every loss; {next(iter(shown.values()))}"
    return "; ".join(f"{name}: {text}" for name, text in shown.items())


def _inner(annotation, metadata=()):
    """``(type, choices)`` under Optional / Annotated / list; ``choices`` from a registry check
    (:func:`common.config.one_of`)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _inner(typing.get_args(annotation)[0], annotation.__metadata__)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return _inner(args[0], metadata)
    if typing.get_origin(annotation) is list and args:
        return list, _inner(args[0])[1]
    checks = [m.func for m in metadata if isinstance(m, AfterValidator)]
    return annotation, next((c.choices for c in checks if hasattr(c, "choices")), None)


def flag_value(text: str):
    """A flag's value as YAML (numbers, lists, mappings); none / None / null is None."""
    return None if text in NONE else yaml.safe_load(text)


def flag_text(text: str):
    """A string flag's value as typed; none / None / null is None."""
    return None if text in NONE else text


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    groups = {section: parser.add_argument_group(f"{section} section") for section in SECTIONS}
    for flag, (section, key, field) in config_flags().items():
        if field is None:
            kind, choices, bits = typing.Any, None, [f"loss keyword of {_loss_help(key)}"]
        else:
            kind, choices = _inner(field.annotation, field.metadata)
            default = FLAT_DEFAULTS.get(section, {}).get(key, field.default)
            bits = [field.description or "", "required" if field.is_required() else f"default: {default}"]
        if choices is not None:
            bits.insert(1, f"one of: {', '.join(sorted(map(str, choices)))}")
        help_text = "; ".join(b for b in bits if b).replace("%", "%%")     # argparse %-formats help
        kwargs = dict(dest=f"{section}.{key}", default=argparse.SUPPRESS, help=help_text)
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif kind is list:
            kwargs.update(nargs="+", type=flag_value, metavar="V")
        else:
            kwargs.update(type=flag_text if kind is str else flag_value, metavar=key.strip("_").upper())
        groups[section].add_argument(flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m common.train", description=__doc__.split("\n\n")[0],
        usage="%(prog)s --model NAME --dataset NAME [--loss NAME] [--imb-factor F] [--epochs N] [--seed S] "
              "[FLAG ...]\n       %(prog)s --eval RUN_OR_CHECKPOINT [--data DIR]",
        epilog="Anything else: --set SECTION.KEY=VALUE, e.g. a study's method section (--set method.name="
               "sla_multiexpert --set method.KEY=V; its keys are in that study's configs, and importing it registers "
               "its models too). A value none / None / null unsets a key. Keys: common/config.py; losses: "
               "common/losses/.")
    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, help="run folder (default: runs/train/<dataset>_<model>_<loss>_s<seed>_<hash>)")
    run.add_argument("--data", help="data root holding cifar-10-batches-py/ or cifar-100-python/ (default: "
                                    "$LTREPRO_DATA or ./data; with --eval the run's own if it is here)")
    run.add_argument("--device", help="cuda, cpu, ... (default: cuda if available)")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="any config value (parsed as YAML), after the flags")
    run.add_argument("--rerun-stale", action="store_true", help="re-train when --out holds a run of another config")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--eval", type=Path, metavar="RUN_OR_CHECKPOINT",
                     help="evaluate a kept checkpoint (a run folder: its weights.pt) on the run's test sets; train nothing")
    add_config_flags(parser)
    return parser


def flag_config(args: argparse.Namespace) -> dict:
    """The flags given, as a nested partial config."""
    out = {}
    for dest, value in vars(args).items():
        section, dot, key = dest.partition(".")
        if dot:
            out.setdefault(section, {})[key] = value
    return out


def config_from_args(args: argparse.Namespace):
    flags, extra = flag_config(args), parse_overrides(args.set)
    layers = [("--set", extra), ("the command line", flags)]      # FLAT_DEFAULTS are valid: not a source
    try:
        return validate_config(deep_merge(deep_merge(FLAT_DEFAULTS, flags), extra), layers)
    except ConfigError as err:   # name the flag the user typed
        if not err.problems:
            raise
        flag_of = {(section, key): flag for flag, (section, key, _) in config_flags().items()}
        named = format_problems(err.problems, lambda source, loc: flag_of.get(tuple(loc[:2]))
                                if source == "the command line" else None)
        raise ConfigError(named, err.problems) from None


def default_out(cfg) -> Path:
    d = cfg.data
    imbalance = f"-lt{round(1 / d.imb_factor)}" if d.imb_factor else ""
    return Path("runs/train") / f"{d.dataset}{imbalance}_{cfg.model.name}_{cfg.loss.name}_s{cfg.train.seed}_" \
                                f"{config_hash(config_record(cfg))[:6]}"


def evaluate(args) -> None:
    """``--eval``: a run folder's ``weights.pt`` or a checkpoint file in one; results in
    ``RUN/eval/<checkpoint>/``."""
    if not args.eval.exists():
        raise ConfigError(f"--eval {args.eval}: no such run folder or checkpoint")
    run_dir = args.eval if args.eval.is_dir() else args.eval.parent
    result = evaluate_checkpoint(run_dir, None if args.eval.is_dir() else args.eval, args.data, args.device)
    checkpoint = Path(result["checkpoint"])
    out = run_dir / "eval" / checkpoint.stem
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    report_run(result, out, f"{run_dir.name} ({checkpoint.name}, evaluated)")
    recorded = run_dir / "record.json"
    if checkpoint.name == "weights.pt" and recorded.exists():    # the weights the record was measured with
        then = read_record(recorded)["metrics"]
        for name, m in result["metrics"].items():
            if name in then:
                print(f"{name}: top-1 {100 * m['accuracy']:.2f}% now, {100 * then[name]['accuracy']:.2f}% when trained")


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    given = flag_config(args)
    if args.eval is None and not ("dataset" in given.get("data", {}) and "name" in given.get("model", {})):
        parser.error("--model and --dataset are required to train (or --eval RUN to evaluate one)")
    if args.eval is not None and (given or args.set):
        parser.error("--eval evaluates the run under its own config: drop the config flags and --set")
    try:
        if args.eval is not None:
            return evaluate(args)
        cfg = config_from_args(args)
        out = args.out or default_out(cfg)
        print(f"run folder: {out}")
        record = run_experiment(cfg, out, args.data, args.device, progress=not args.no_progress,
                                rerun_stale=args.rerun_stale)
    except RUN_ERRORS as err:
        sys.exit(f"error: {err}")
    report_run(record, Path(out), Path(out).name)


if __name__ == "__main__":
    main()
