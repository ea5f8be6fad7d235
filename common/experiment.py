"""Config-driven single run: data -> model -> loss -> fit -> evaluate -> ``record.json``.

    python -m common.experiment CONFIG.yaml --preset smoke --out results/runs/NAME

A config is a YAML mapping with ``data``, ``model``, ``loss``, ``train`` and ``eval``
sections and optional ``presets: {smoke: {...}, quick: {...}, paper: {...}}`` whose entries
are deep-merged over the base. A run whose ``record.json`` exists is skipped.
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

from . import data as D
from .data.synthetic import is_synthetic
from .engine import TrainConfig, default_device, fit, make_step, now, predict, seed_everything, write_record
from .losses import build_loss
from .metrics import evaluate_predictions
from .models import build_model

NORMALISATION = {
    "cifar10": (D.CIFAR10_MEAN, D.CIFAR10_STD),
    "cifar100": (D.CIFAR100_MEAN, D.CIFAR100_STD),
    "ldam": (D.LDAM_MEAN, D.LDAM_STD),
    "imagenet": (D.IMAGENET_MEAN, D.IMAGENET_STD),
}


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(path, preset: str | None = None, overrides: dict | None = None) -> dict:
    cfg = yaml.safe_load(Path(path).read_text())
    presets = cfg.pop("presets", {}) or {}
    if preset is not None:
        if preset not in presets:
            raise ValueError(f"{path}: no preset {preset!r}; it has {sorted(presets)}")
        cfg = deep_merge(cfg, presets[preset])
    cfg = deep_merge(cfg, overrides or {})
    cfg["preset"] = preset
    return cfg


def parse_overrides(items) -> dict:
    """``["train.epochs=5", "model.pretrained=false"]`` -> nested dict; values are parsed as YAML."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not SECTION.KEY=VALUE")
        node = overrides
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return overrides


def thesis_split_from_config(labels, num_classes: int, dcfg: dict) -> dict:
    """:func:`common.data.thesis_split` with the ``data`` section's sizes, imbalance and seed."""
    return D.thesis_split(labels, num_classes, dcfg.get("train_per_class", 450), dcfg.get("test_per_class", 50),
                          dcfg.get("imb_factor", 0.01), dcfg.get("split_seed", 42), dcfg.get("min_count", 0))


def build_datasets(dcfg: dict, root) -> dict:
    """Train images / labels / class counts, the test sets, and the validation set if any.

    ``split: standard``: train = long-tailed subset of the official train set (LDAM-DRW
    selection; ``imb_factor: null`` keeps it whole), test = the official test set.
    ``split: thesis``: seed 001's split of the official train set (see ``thesis_split``);
    ``train_set`` picks ``balanced`` or ``long_tailed``, the official test set validates,
    and the balanced and long-tailed test splits are the test sets.
    """
    name = dcfg["dataset"]
    train_x, train_y, classes = D.load_cifar(name, root, train=True)
    test_x, test_y, _ = D.load_cifar(name, root, train=False)
    if dcfg.get("classes"):  # the first k classes, renumbered
        keep = list(range(dcfg["classes"]))
        idx, train_y = D.select_classes(train_y, keep)
        train_x = train_x[idx]
        idx, test_y = D.select_classes(test_y, keep)
        test_x, classes = test_x[idx], [classes[c] for c in keep]
    num_classes = len(classes)
    out = {"classes": classes, "num_classes": num_classes}
    if dcfg.get("split", "standard") == "thesis":
        split = thesis_split_from_config(train_y, num_classes, dcfg)
        train_idx = split["lt_train" if dcfg.get("train_set", "long_tailed") == "long_tailed" else "train"]
        out["train"] = (train_x[train_idx], train_y[train_idx])
        out["tests"] = {"balanced": (train_x[split["test"]], train_y[split["test"]]),
                        "long_tailed": (train_x[split["lt_test"]], train_y[split["lt_test"]])}
        out["val"] = (test_x, test_y)
        out["group_counts"] = split["lt_train_counts"]  # head/middle/tail follow the LT profile
    else:
        if dcfg.get("imb_factor"):
            num_max = int(np.bincount(train_y).max())
            counts = D.longtail_counts(num_max, num_classes, dcfg["imb_factor"], dcfg.get("profile", "exp"),
                                       min_count=dcfg.get("min_count", 0))
            idx = D.longtail_indices(train_y, counts, dcfg.get("lt_seed", 0))
            train_x, train_y = train_x[idx], train_y[idx]
        out["train"] = (train_x, train_y)
        out["tests"] = {"test": (test_x, test_y)}
        out["val"] = (test_x, test_y) if dcfg.get("validate_on_test", False) else None
        out["group_counts"] = None
    out["train_counts"] = D.class_counts(out["train"][1], num_classes).tolist()
    if out["group_counts"] is None:
        out["group_counts"] = out["train_counts"]
    return out


@functools.lru_cache(maxsize=None)
def data_provenance(name: str, root) -> str:
    if is_synthetic(name, root):
        return f"synthetic {name} (official format, not real images)"
    folder = Path(root) / D.cifar.LAYOUTS[name].folder
    meta = D.safe_load_pickle(folder / D.cifar.LAYOUTS[name].test_files[0])
    if str(meta.get("filenames", ["x"])[0]).startswith("unknown_"):
        return f"reconstructed {name} (labels exact, pixels mostly from JPEG copies)"
    return name


def loss_from_config(cfg: dict, class_counts) -> torch.nn.Module:
    """The ``loss`` section (``name`` plus keyword arguments) built for these class counts."""
    lcfg = dict(cfg.get("loss", {"name": "ce"}))
    return build_loss(lcfg.pop("name"), class_counts, **lcfg)


def transforms_from_config(cfg: dict) -> tuple[Callable, Callable]:
    """``(augment, test_transform)`` from the ``train`` section: ``augment(name)`` builds that
    training augmentation; both take uint8 batches to normalised float batches."""
    train = cfg.get("train", {})
    mean, std = NORMALISATION[train.get("normalize", cfg["data"]["dataset"])]
    size, resize_first = train.get("size"), train.get("resize_first", False)
    return (lambda name: D.build_augment(name, mean, std, size, resize_first)), D.build_augment("none", mean, std, size)


@dataclass
class RunContext:
    """What a study's ``build_step`` gets to assemble its training step from."""
    cfg: dict
    train_cfg: TrainConfig
    data: dict               # build_datasets output (train counts, classes, ...)
    model: torch.nn.Module
    loss_fn: torch.nn.Module
    loader: D.BatchLoader
    test_transform: Callable
    augment: Callable        # augmentation name -> uint8 batch -> normalised float batch


def default_step(ctx: RunContext):
    """The plain step (``train.augment``, optional mixup) and the loss's epoch hook."""
    augment = ctx.augment(ctx.cfg.get("train", {}).get("augment", "standard"))
    hooks = (ctx.loss_fn.set_epoch,) if hasattr(ctx.loss_fn, "set_epoch") else ()
    return make_step(ctx.loss_fn, augment, ctx.train_cfg.mixup_alpha), hooks


def run_experiment(cfg: dict, out_dir, data_root=None, device=None, progress: bool = True,
                   build_step: Callable | None = None) -> dict:
    """One run end to end. ``build_step(ctx) -> (step, epoch_hooks)`` replaces the plain step."""
    out_dir = Path(out_dir)
    if (out_dir / "record.json").exists():
        print(f"skip {out_dir}: finished")
        return json.loads((out_dir / "record.json").read_text())
    started = now()
    device = torch.device(device) if device else default_device()
    root = Path(data_root) if data_root else D.default_data_root()
    tcfg = TrainConfig.from_dict(cfg.get("train", {}))
    seed_everything(tcfg.seed, tcfg.deterministic)
    ds = build_datasets(cfg["data"], root)

    mcfg = cfg["model"]
    model = build_model(mcfg["name"], ds["num_classes"], pretrained=mcfg.get("pretrained", False),
                        weights=mcfg.get("weights"), **mcfg.get("kwargs", {})).to(device)
    loss_fn = loss_from_config(cfg, ds["train_counts"]).to(device)
    augment, test_tf = transforms_from_config(cfg)
    train = cfg.get("train", {})
    train_x, train_y = ds["train"]
    weights = (D.class_balanced_sample_weights(train_y) if cfg["data"].get("sampler") == "class_balanced" else None)
    loader = D.BatchLoader(D.to_tensor_images(train_x, device), train_y, tcfg.batch_size, shuffle=True,
                           sample_weights=weights, seed=tcfg.seed)
    tests = {k: (D.to_tensor_images(x, device), y) for k, (x, y) in ds["tests"].items()}
    eval_bs = train.get("eval_batch_size", 500)
    ctx = RunContext(cfg, tcfg, ds, model, loss_fn, loader, test_tf, augment)
    step, hooks = (build_step or default_step)(ctx)

    val = None
    if ds["val"] is not None:
        val = (D.to_tensor_images(ds["val"][0], device), ds["val"][1])

    def validate(m):
        x, y = val
        return {"accuracy": float((predict(m, x, test_tf, eval_bs, tcfg.amp).argmax(1) == y).mean())}

    history = fit(model, loader, tcfg, out_dir, step=step, validate=validate if val is not None else None,
                  epoch_hooks=hooks, progress=progress)

    ecfg = cfg.get("eval", {})
    metrics = {}
    for name, (x, y) in tests.items():
        probs = predict(model, x, test_tf, eval_bs, amp=False)  # fp32: ECE and ties need exact logits
        metrics[name] = evaluate_predictions(probs, y, ds["group_counts"], ecfg.get("groups", ["shot"]),
                                             ecfg.get("n_bins", 15))
    record_cfg = {k: v for k, v in cfg.items() if k != "preset"}
    write_record(out_dir, record_cfg, metrics, started, preset=cfg.get("preset"), epochs=tcfg.epochs,
                 data=data_provenance(cfg["data"]["dataset"], root), data_root=str(root),
                 train_counts=ds["train_counts"], classes=ds["classes"], history=history)
    for ckpt in ("last.pt", "best.pt"):  # finished: the record is what is kept
        (out_dir / ckpt).unlink(missing_ok=True)
    return json.loads((out_dir / "record.json").read_text())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--preset", default=None, choices=["smoke", "quick", "paper", None])
    parser.add_argument("--out", required=True, help="run folder (record.json, log.jsonl, checkpoints)")
    parser.add_argument("--data", default=None, help="data root (default: $LTREPRO_DATA or ./data)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=5 (value parsed as YAML)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.preset, parse_overrides(args.set))
    try:
        rec = run_experiment(cfg, args.out, args.data, args.device)
    except D.CifarNotFoundError as err:
        sys.exit(str(err))
    for name, m in rec["metrics"].items():
        print(f"{name}: accuracy {100 * m['accuracy']:.2f}%  ECE {100 * m['ece']:.2f}%")


if __name__ == "__main__":
    main()
