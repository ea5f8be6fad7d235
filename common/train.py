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
import inspect
import json
import math
import re
import sys
import types
import typing
from collections import Counter
from pathlib import Path

import yaml
from pydantic import AfterValidator

from .config import (ConfigError, DataConfig, EvalConfig, LossConfig, ModelConfig, TrainConfig, close_match,
                     config_hash, config_record, deep_merge, parse_overrides, validate_config)
from .experiment import RUN_ERRORS, evaluate_checkpoint, run_experiment
from .data import GROUP_NAMES
from .losses import LOSSES

SECTIONS = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig, "eval": EvalConfig}
RENAMED = {("model", "name"): "model", ("model", "kwargs"): "model-kwargs", ("loss", "name"): "loss",
           ("train", "gamma"): "lr-gamma"}
FLAT_DEFAULTS = {"train": {"keep_weights": True}}     # a flat run keeps its weights, for --eval


def config_flags() -> dict[str, tuple[str, str, typing.Any]]:
    """``--flag`` -> (section, key, annotation) for every key of every section and every keyword
    of every registered loss. A key is its own flag unless two sections share it."""
    shared = Counter(key for schema in SECTIONS.values() for key in schema.model_fields)
    flags = {}
    for section, schema in SECTIONS.items():
        for key, field in schema.model_fields.items():
            name = RENAMED.get((section, key)) or (key if shared[key] == 1 else f"{section}-{key}")
            flags["--" + name.replace("_", "-")] = (section, key, field.annotation)
    for key, annotation in loss_keywords().items():
        flags["--loss-" + key.strip("_").replace("_", "-")] = ("loss", key, annotation)
    return flags


def loss_keywords() -> dict[str, typing.Any]:
    """Keyword -> type hint of every registered loss's constructor (past the class counts)."""
    out = {}
    for cls in LOSSES.values():
        hints = typing.get_type_hints(cls.__init__)
        for p in list(inspect.signature(cls.__init__).parameters.values())[2:]:
            out.setdefault(p.name, hints.get(p.name, typing.Any))
    return out


def _inner(annotation, metadata=()):
    """``(type, choices)`` under Optional / Annotated; ``choices`` from a registry check
    (:func:`common.config.one_of`)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _inner(typing.get_args(annotation)[0], annotation.__metadata__)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return _inner(args[0], metadata)
    checks = [m.func for m in metadata if isinstance(m, AfterValidator)]
    return annotation, next((c.choices for c in checks if hasattr(c, "choices")), None)


def _comments(schema) -> dict[str, str]:
    """The end-of-line comment beside each key in ``schema``'s source (continued on the lines
    below, aligned with it): the one place the keys are explained."""
    try:
        source = inspect.getsource(schema).splitlines()
    except OSError:
        return {}
    notes, key = {}, None
    for line in source:
        field = re.match(r" {4}(\w+): [^#]*?(?:#\s*(.*))?$", line)
        more = re.match(r" {5,}#\s*(.*)$", line)
        if field:
            key = field.group(1) if field.group(2) else None
            if key:
                notes[key] = field.group(2)
        elif more and key:
            notes[key] += " " + more.group(1)
        else:
            key = None
    return notes


def _loss_defaults(key: str) -> str:
    """The default of keyword ``key`` for each registered loss that takes it."""
    defaults = {name: inspect.signature(cls).parameters[key].default
                for name, cls in LOSSES.items() if key in inspect.signature(cls).parameters}
    if len(defaults) == len(LOSSES) and len(set(map(repr, defaults.values()))) == 1:
        return f"every loss: {next(iter(defaults.values()))}"
    return ", ".join(f"{name} {value}" for name, value in defaults.items())


def yaml_value(text: str):
    return yaml.safe_load(text)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    comments = {section: _comments(schema) for section, schema in SECTIONS.items()}
    groups = {section: parser.add_argument_group(f"{section} section") for section in SECTIONS}
    for flag, (section, key, annotation) in config_flags().items():
        field = SECTIONS[section].model_fields.get(key)
        kind, choices = _inner(annotation, field.metadata if field else ())
        if field is None:     # a loss's own keyword
            bits = [f"default: {_loss_defaults(key)}"]
        else:
            default = FLAT_DEFAULTS.get(section, {}).get(key, field.default)
            bits = [comments[section].get(key, ""), "required" if field.is_required() else f"default: {default}"]
        if choices is not None:
            bits.insert(1, f"one of: {', '.join(sorted(map(str, choices)))}")
        kwargs = dict(dest=f"{section}.{key}", default=argparse.SUPPRESS, help="; ".join(b for b in bits if b))
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is list:
            kwargs.update(nargs="+", type=yaml_value, metavar="V")
        else:
            kwargs.update(type=str if kind is str else yaml_value, metavar=key.strip("_").upper())
        groups[section].add_argument(flag, **kwargs)


class Parser(argparse.ArgumentParser):
    """An unknown flag is an error that names the closest flag."""

    def parse_args(self, args=None, namespace=None):
        known, unknown = self.parse_known_args(args, namespace)
        if unknown:
            flags = [s for a in self._actions for s in a.option_strings]
            self.error("; ".join(f"unknown argument {u!r}{close_match(u.split('=')[0], flags)}" for u in unknown))
        return known


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m common.train", description=__doc__.split("\n\n")[0], allow_abbrev=False,
                    usage="%(prog)s --model NAME --dataset NAME [--loss NAME] [--imb-factor F] [--epochs N] "
                          "[--seed S] [FLAG ...]\n       %(prog)s --eval RUN_OR_CHECKPOINT [--data DIR]",
                    epilog="Anything else: --set SECTION.KEY=VALUE (e.g. --set method.name=...). Keys are explained "
                           "in common/config.py; losses in common/losses/.")
    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, help="run folder (default: runs/train/<dataset>_<model>_<loss>_s<seed>_<hash>)")
    run.add_argument("--data", help="data root holding cifar-10-batches-py/ or cifar-100-python/ "
                                    "(default: $LTREPRO_DATA or ./data)")
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
    layers = [("--set", extra), ("the command line", flags), ("common.train's defaults", FLAT_DEFAULTS)]
    try:
        return validate_config(deep_merge(deep_merge(FLAT_DEFAULTS, flags), extra), layers)
    except ConfigError as err:   # name the flag the user typed
        message = str(err)
        for flag, (section, key, _) in config_flags().items():
            message = re.sub(rf"the command line: {section}\.{key}([.:])", rf"{flag}\1", message)
        raise ConfigError(message) from None


def default_out(cfg) -> Path:
    d = cfg.data
    imbalance = f"-lt{round(1 / d.imb_factor)}" if d.imb_factor else ""
    return Path("runs/train") / f"{d.dataset}{imbalance}_{cfg.model.name}_{cfg.loss.name}_s{cfg.train.seed}_" \
                                f"{config_hash(config_record(cfg))[:6]}"


def per_class_summary(record: dict) -> str:
    """Each test set's top-1 / ECE / group accuracies, then recall and precision per class."""
    lines = []
    for name, m in record["metrics"].items():
        classes, counts = record["classes"], record["train_counts"]
        width = max(8, *(len(str(c)) for c in classes))
        groups = "  ".join(f"{g} {100 * m[g]:.2f}%" for names in GROUP_NAMES.values() for g in names
                           if g in m and not math.isnan(m[g]))
        lines += [f"{name} ({m['n']} images): top-1 {100 * m['accuracy']:.2f}%  ECE {100 * m['ece']:.2f}%  {groups}",
                  f"  {'class':{width}s} {'train':>6s} {'test':>5s} {'recall':>7s} {'precision':>9s}"]
        for c, cls in enumerate(classes):
            lines.append(f"  {str(cls):{width}s} {counts[c]:6d} {m['support'][c]:5d} {100 * m['recall'][c]:6.2f}% "
                         f"{100 * m['precision'][c]:8.2f}%")
    return "\n".join(lines)


def save_confusion(record: dict, folder: Path, title: str) -> list[Path]:
    """``confusion_<test set>.png`` (row-normalised) in ``folder`` for each test set."""
    from .report import budget_label, plot_confusion

    paths = []
    for name, m in record["metrics"].items():
        path = Path(folder) / f"confusion_{name}.png"
        plot_confusion(m["confusion_matrix"], record["classes"], path,
                       f"{title}: {name} set (top-1 {100 * m['accuracy']:.2f}%)", footer=budget_label(record))
        paths.append(path)
    return paths


def report_run(record: dict, folder: Path, title: str) -> None:
    print(per_class_summary(record))
    for path in save_confusion(record, folder, title):
        print(f"confusion matrix: {path}")


def evaluate(args) -> None:
    if not args.eval.exists():
        raise ConfigError(f"--eval {args.eval}: no such run folder or checkpoint")
    run_dir = args.eval if args.eval.is_dir() else args.eval.parent
    result = evaluate_checkpoint(run_dir, None if args.eval.is_dir() else args.eval, args.data, args.device)
    out = run_dir / "eval"
    out.mkdir(exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    report_run(result, out, f"{run_dir.name} ({Path(result['checkpoint']).name}, evaluated)")
    recorded = run_dir / "record.json"
    if recorded.exists():
        then = json.loads(recorded.read_text())["metrics"]
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
