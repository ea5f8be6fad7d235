"""Config-driven single run: data -> model -> loss -> fit -> evaluate -> ``record.json``.

    python -m common.experiment CONFIG.yaml --preset smoke --out results/runs/NAME [--set train.epochs=5]

The config (see :mod:`common.config`) is validated before anything is read or trained. A run
folder is claimed with a file lock while it trains, so several processes (or machines on a
shared file system) can work through one grid; a finished run (``record.json``) is skipped
when its config is the one asked for and reported as stale when it is not.
"""
from __future__ import annotations

import hashlib
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml
from filelock import FileLock, Timeout

from . import data as D
from .cli import ArgumentParser
from .config import (ConfigError, DataConfig, ExperimentConfig, config_diff, config_hash, config_record, load_config,
                     parse_overrides, upgrade_config, validate_config)
from .data.provenance import data_provenance
from .engine import (CheckpointError, NonFiniteLossError, cached_features, classifier_probs, default_device,
                     environment, feature_step, fit, load_checkpoint, make_step, now, predict, run_numerics,
                     save_atomic, seed_everything)
from .features import kept_run_features
from .losses import build_loss, sigmoid_bias_init
from .methods import get_method
from .metrics import evaluate_predictions
from .models import LearnableWeightScaling, build_model, pretrained_source
from .precision import Numerics
from .report import report_run
from .runstore import DamagedRecordError, read_record, save_predictions, write_record


class RunClaimedError(RuntimeError):
    """Another process holds this run's claim (it is training it now)."""


class StaleRunError(RuntimeError):
    """The run folder holds a finished run of another config."""


class ResultsNotWritableError(RuntimeError):
    pass


class ParentNotFinishedError(RuntimeError):
    """``model.init_from`` names a run that has not finished (or kept no weights)."""


# what a command line reports in one message (no traceback): the user's input or files are at fault
RUN_ERRORS = (ConfigError, D.CifarError, CheckpointError, StaleRunError, RunClaimedError, ResultsNotWritableError,
              NonFiniteLossError, ParentNotFinishedError, DamagedRecordError)


def thesis_split_from_config(labels, num_classes: int, dcfg: DataConfig) -> dict:
    """:func:`common.data.thesis_split` with the ``data`` section's sizes, imbalance and seed."""
    return D.thesis_split(labels, num_classes, dcfg.train_per_class, dcfg.test_per_class, dcfg.imb_factor,
                          dcfg.split_seed, dcfg.min_count)


def num_classes_of(dcfg: DataConfig) -> int:
    return dcfg.classes or D.cifar.LAYOUTS[dcfg.dataset].num_classes


def build_datasets(dcfg: DataConfig, root) -> dict:
    """Train images / labels (and their indices) / class counts, the test sets, and the validation set if any.

    ``split: standard``: train = long-tailed subset of the official train set (LDAM-DRW
    selection; ``imb_factor: null`` keeps it whole), test = the official test set; with
    ``folds`` / ``fold`` that fold of the training set is held out and predicted (``heldout_fold``).
    ``split: thesis``: seed 001's split of the official train set (see ``thesis_split``);
    ``train_set`` picks ``balanced`` or ``long_tailed``, the official test set validates,
    and the balanced and long-tailed test splits are the test sets.
    """
    train_x, train_y, classes = D.load_cifar(dcfg.dataset, root, train=True)
    test_x, test_y, _ = D.load_cifar(dcfg.dataset, root, train=False)
    if dcfg.classes:  # the first k classes, renumbered
        keep = list(range(dcfg.classes))
        idx, train_y = D.select_classes(train_y, keep)
        train_x = train_x[idx]
        idx, test_y = D.select_classes(test_y, keep)
        test_x, classes = test_x[idx], [classes[c] for c in keep]
    num_classes = len(classes)
    out = {"classes": classes, "num_classes": num_classes}
    if dcfg.split == "thesis":
        split = thesis_split_from_config(train_y, num_classes, dcfg)
        train_idx = split["lt_train" if dcfg.train_set == "long_tailed" else "train"]
        out["train"] = (train_x[train_idx], train_y[train_idx])
        out["train_indices"] = train_idx
        out["tests"] = {"balanced": (train_x[split["test"]], train_y[split["test"]]),
                        "long_tailed": (train_x[split["lt_test"]], train_y[split["lt_test"]])}
        out["val"] = (test_x, test_y)
        out["group_counts"] = split["lt_train_counts"]  # head/middle/tail follow the LT profile
    else:
        chosen = training_indices(train_y, num_classes, dcfg)
        out["group_counts"] = chosen["group_counts"]     # many / medium / few: the long-tailed profile
        out["train"] = (train_x[chosen["train"]], train_y[chosen["train"]])
        out["train_indices"] = chosen["train"]
        out["tests"] = {"test": (test_x, test_y)}
        for name in ("heldout_fold", "validation"):
            if chosen[name] is not None:
                out["tests"][name] = (train_x[chosen[name]], train_y[chosen[name]])
        out["val"] = (test_x, test_y) if dcfg.validate_on_test else None
    out["train_counts"] = D.class_counts(out["train"][1], num_classes).tolist()
    return out


def training_indices(train_y, num_classes: int, dcfg: DataConfig) -> dict:
    """Which images of the official training set a ``split: standard`` run trains on, from the
    labels alone: ``train`` (indices; re-sampled images repeated), ``heldout_fold`` (or None),
    ``validation`` (the held-out last ``val_per_class`` images of each class, or None) and
    ``group_counts`` (the long-tailed set's class counts, before folds and re-sampling)."""
    train_y = np.asarray(train_y)
    idx, validation = np.arange(len(train_y)), None
    if dcfg.val_per_class:
        per_class = [np.where(train_y == c)[0] for c in range(num_classes)]
        if min(len(p) for p in per_class) <= dcfg.val_per_class:
            raise ConfigError(f"data.val_per_class {dcfg.val_per_class} leaves a class with no training image "
                              f"(the smallest has {min(len(p) for p in per_class)})")
        validation = np.sort(np.concatenate([p[-dcfg.val_per_class:] for p in per_class]))
        idx = np.sort(np.concatenate([p[:-dcfg.val_per_class] for p in per_class]))
    if dcfg.max_per_class:
        idx = np.sort(np.concatenate([idx[train_y[idx] == c][:dcfg.max_per_class] for c in range(num_classes)]))
    if dcfg.imb_factor:
        num_max = int(np.bincount(train_y[idx]).max())
        counts = D.longtail_counts(num_max, num_classes, dcfg.imb_factor, dcfg.profile, min_count=dcfg.min_count)
        idx = idx[D.longtail_indices(train_y[idx], counts, dcfg.lt_seed)]
    group_counts = D.class_counts(train_y[idx], num_classes).tolist()
    held = None
    if dcfg.folds:
        kept, held = D.fold_split(train_y[idx], dcfg.folds, dcfg.fold, dcfg.lt_seed)
        idx, held = idx[kept], idx[held]
    return {"train": idx[_resample(train_y[idx], dcfg)], "heldout_fold": held, "validation": validation,
            "group_counts": group_counts}


def planned_training_indices(dcfg: DataConfig) -> dict:
    """:func:`training_indices` on stand-in labels with the official per-class counts: the sizes of
    a run's training set without its data files (for plans)."""
    num_classes = num_classes_of(dcfg)
    labels = np.repeat(np.arange(num_classes), D.cifar.LAYOUTS[dcfg.dataset].train_per_class)
    return training_indices(labels, num_classes, dcfg)


def _resample(y, dcfg: DataConfig) -> np.ndarray:
    """Indices of seed 002's artificial balancing, or of one learner's bag of its balanced bagging."""
    if dcfg.balance_threshold:
        return D.artificial_balance(y, dcfg.balance_threshold, seed=dcfg.lt_seed)
    if dcfg.bag_threshold:
        bags = D.balanced_bagging(y, dcfg.bag_threshold, seed=dcfg.lt_seed)
        if dcfg.bag_index >= len(bags):
            raise ConfigError(f"data.bag_index {dcfg.bag_index}: bag_threshold {dcfg.bag_threshold} gives "
                              f"{len(bags)} learners (0-{len(bags) - 1}) for this training set")
        return bags[dcfg.bag_index]
    return np.arange(len(y))


def loss_from_config(cfg: ExperimentConfig, class_counts) -> torch.nn.Module:
    """The ``loss`` section (``name`` plus keyword arguments) built for these class counts."""
    return build_loss(class_counts=class_counts, **cfg.loss.model_dump())


def transforms_from_config(cfg: ExperimentConfig) -> tuple[Callable, Callable]:
    """``(augment, test_transform)`` from the ``train`` section: ``augment(name)`` builds that
    training augmentation; both take uint8 batches to normalised float batches."""
    t = cfg.train
    mean, std = D.NORMALISATIONS[t.normalize or cfg.data.dataset]
    return (lambda name: D.build_augment(name, mean, std, t.size, t.resize_first)), D.build_augment("none", mean, std, t.size)


@dataclass
class RunContext:
    """What a study's ``build_step`` gets to assemble its training step from."""
    cfg: ExperimentConfig
    data: dict               # build_datasets output (train counts, classes, ...)
    model: torch.nn.Module
    loss_fn: torch.nn.Module
    loader: D.BatchLoader
    test_transform: Callable
    augment: Callable        # augmentation name -> uint8 batch -> normalised float batch
    numerics: Numerics       # what the run computes in (common.precision)
    frozen_features: Callable  # (uint8 images, bf16) -> features of the frozen backbone (stored per parent run)

    @property
    def train_cfg(self):
        return self.cfg.train


def default_step(ctx: RunContext):
    """The plain step (``train.augment``, optional mixup) and the loss's epoch hook.

    A classifier-only stage without augmentation trains on the frozen backbone's features,
    computed once (``ctx.loader`` becomes a loader over them); with augmentation the features
    are computed per batch without a graph."""
    t = ctx.cfg.train
    hooks = (ctx.loss_fn.set_epoch,) if hasattr(ctx.loss_fn, "set_epoch") else ()
    if t.classifier_only and t.augment == "none":
        loader = ctx.loader
        features = ctx.frozen_features(loader.images, ctx.numerics.bf16)
        ctx.loader = D.BatchLoader(features, loader.labels, loader.batch_size, shuffle=loader.shuffle,
                                   drop_last=loader.drop_last, sample_weights=loader.sample_weights, seed=loader.seed)
        return feature_step(ctx.loss_fn), hooks
    return make_step(ctx.loss_fn, ctx.augment(t.augment), t.mixup_alpha, frozen_backbone=t.classifier_only), hooks


def record_config(record: dict) -> dict:
    """A finished run's config under today's schema (:func:`common.config.upgrade_config`), so
    adding a config key does not make every finished run stale."""
    return upgrade_config(record["config"])


def source_record(folder: Path, needed_by) -> dict:
    """The record of the finished run ``folder``, which ``needed_by`` starts from or is computed
    from; raises :class:`ParentNotFinishedError` if it has not finished."""
    if not (folder / "record.json").exists():
        raise ParentNotFinishedError(f"{needed_by} starts from {folder}, which has not finished: run it first")
    return read_record(folder / "record.json")


def parent_record(out_dir: Path, cfg: ExperimentConfig) -> tuple[Path, dict]:
    """The folder and record of the run ``cfg.model.init_from`` names (beside ``out_dir``, or a
    path); raises :class:`ParentNotFinishedError` unless it finished and kept its weights."""
    folder = out_dir.parent / cfg.model.init_from
    record = source_record(folder, out_dir)
    if not (folder / "weights.pt").exists():
        raise ParentNotFinishedError(f"{folder} finished without keeping its weights (weights.pt), which {out_dir} "
                                     f"starts from: re-run it with train.keep_weights, or copy its weights.pt there")
    return folder, record


def finished_record(out_dir: Path, cfg: ExperimentConfig) -> dict | None:
    """The run's ``record.json`` if it finished under ``cfg``; raises :class:`StaleRunError` if
    it finished under another config; None if it has not finished."""
    path = out_dir / "record.json"
    if not path.exists():
        return None
    record = read_record(path)
    then, current = record_config(record), config_record(cfg)
    changes = config_diff(then, current) if config_hash(then) != config_hash(current) else []
    parent = record.get("parent")
    if parent and (Path(parent["run"]) / "record.json").exists():
        now_parent = read_record(Path(parent["run"]) / "record.json")
        if now_parent["run_id"] != parent["run_id"]:
            changes.append(f"its parent run {parent['run']} was re-trained since (finished {now_parent['finished']})")
    if not changes:
        return record
    raise StaleRunError(f"{path} was written under another config ({'; '.join(changes[:4]) or 'an older schema'}"
                        f"{'; ...' if len(changes) > 4 else ''}). It is kept as it is: re-run it with --rerun-stale "
                        f"(or delete {out_dir}).")


def _prepare_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-probe-{os.getpid()}"      # per process: workers share run folders
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ResultsNotWritableError(f"results folder {out_dir} is not writable ({err.strerror or err}); "
                                      f"pass another --out or fix its permissions") from err


@contextmanager
def claim(out_dir: Path, wait: bool = False):
    """Hold the run's claim (``claim.lock``) while the block runs. Without ``wait`` a claim held
    by another process raises :class:`RunClaimedError`; a dead process's claim is free (the
    operating system drops its lock)."""
    lock = FileLock(out_dir / "claim.lock")
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        raise RunClaimedError(f"{out_dir} is being trained by another process") from None
    try:
        yield
    finally:
        lock.release()


def run_experiment(cfg: ExperimentConfig, out_dir, data_root=None, device=None, progress: bool = True,
                   build_step: Callable | None = None, wait: bool = False, rerun_stale: bool = False) -> dict:
    """One run end to end; returns its record. ``build_step(ctx) -> (step, epoch_hooks)``
    replaces the step of ``cfg.method`` (or the plain one). A run finished under ``cfg`` is
    skipped; one finished under another config raises :class:`StaleRunError` unless
    ``rerun_stale``; one another process is training raises :class:`RunClaimedError` unless
    ``wait`` (then it waits, and trains it if that process died before finishing)."""
    out_dir = Path(out_dir)
    try:
        record = finished_record(out_dir, cfg)
    except StaleRunError:
        if not rerun_stale:
            raise
        record = None
    if record is not None:
        print(f"skip {out_dir}: finished")
        return record
    if cfg.model.init_from:
        _wait_for_parent(out_dir, cfg, wait)
    _prepare_folder(out_dir)
    with claim(out_dir, wait):
        try:
            record = finished_record(out_dir, cfg)       # finished by another process meanwhile?
        except StaleRunError:
            (out_dir / "record.json").unlink()           # rerun_stale: the old record goes
        if record is not None:
            print(f"skip {out_dir}: finished by another process")
            return record
        return _train_and_record(cfg, out_dir, data_root, device, progress, build_step)


def _wait_for_parent(out_dir: Path, cfg: ExperimentConfig, wait: bool) -> None:
    try:
        parent_record(out_dir, cfg)
    except ParentNotFinishedError:
        folder = out_dir.parent / cfg.model.init_from
        if not wait or not folder.is_dir():
            raise
        with claim(folder, wait=True):     # until the process training it finishes (or dies)
            pass
        parent_record(out_dir, cfg)


def _train_and_record(cfg: ExperimentConfig, out_dir: Path, data_root, device, progress, build_step) -> dict:
    started = now()
    device = torch.device(device) if device else default_device()
    root = Path(data_root) if data_root else D.default_data_root()
    tcfg = cfg.train
    if build_step is None:
        build_step = get_method(cfg.method.name).build_step if cfg.method is not None else default_step
    seed_everything(tcfg.seed, tcfg.deterministic)
    mcfg = cfg.model
    model = build_model(mcfg.name, num_classes_of(cfg.data), pretrained=mcfg.pretrained, weights=mcfg.weights,
                        **mcfg.kwargs).to(device)
    parent = None                      # which run this one started from, for the record
    if mcfg.init_from:
        parent_dir, parent_rec = parent_record(out_dir, cfg)
        model.load_state_dict(load_checkpoint(parent_dir / "weights.pt")["model"])
        parent = {"run": str(parent_dir), "run_id": parent_rec.get("run_id"), "config_hash": parent_rec.get("config_hash")}
        if mcfg.reset_classifier:
            for layer in model.classifier.modules():
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()
        if mcfg.lws:
            model.classifier = LearnableWeightScaling(model.classifier, num_classes_of(cfg.data)).to(device)
    if mcfg.classifier_prior is not None:
        init_classifier_bias(model.classifier, mcfg.classifier_prior)
    ds = build_datasets(cfg.data, root)
    loss_fn = loss_from_config(cfg, ds["train_counts"]).to(device)
    augment, test_tf = transforms_from_config(cfg)
    train_x, train_y = ds["train"]
    weights = D.class_balanced_sample_weights(train_y) if cfg.data.sampler == "class_balanced" else None
    loader = D.BatchLoader(D.to_tensor_images(train_x, device), train_y, tcfg.batch_size, shuffle=True,
                           sample_weights=weights, seed=tcfg.seed)
    tests = {k: (D.to_tensor_images(x, device), y) for k, (x, y) in ds["tests"].items()}
    numerics = run_numerics(out_dir, device, tcfg)     # a resumed run's own, else what this machine runs natively
    frozen = frozen_features(model, cfg, test_tf, (parent_dir, parent["run_id"]) if parent else None)
    ctx = RunContext(cfg, ds, model, loss_fn, loader, test_tf, augment, numerics, frozen)
    step, hooks = build_step(ctx)      # may swap ctx.loader (e.g. for one over cached features)

    val = None
    if ds["val"] is not None:
        val = (D.to_tensor_images(ds["val"][0], device), ds["val"][1])

    def validate(m):
        x, y = val
        return {"accuracy": float((predict(m, x, test_tf, tcfg.eval_batch_size, numerics.bf16).argmax(1) == y).mean())}

    run_config = config_record(cfg)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(run_config, sort_keys=False))   # what runs, readable now
    history = fit(model, ctx.loader, tcfg, out_dir, step=step, validate=validate if val is not None else None,
                  classifier_only=tcfg.classifier_only, epoch_hooks=hooks, progress=progress, run_config=run_config,
                  numerics=numerics)

    metrics, predictions = evaluate_tests(model, tests, test_tf, cfg, ds["group_counts"],
                                          frozen if tcfg.classifier_only else None)
    save_predictions(out_dir / "predictions.npz", predictions)
    if tcfg.keep_weights:               # before the record: a finished run always has them
        save_atomic({"model": model.state_dict()}, out_dir / "weights.pt")
    write_record(out_dir, run_config, metrics, started, config_hash=config_hash(run_config), preset=cfg.preset,
                 epochs=tcfg.epochs, data=data_provenance(cfg.data.dataset, root), data_root=str(root),
                 train_counts=ds["train_counts"], group_counts=ds["group_counts"], classes=ds["classes"],
                 train_indices_sha256=indices_hash(ds["train_indices"]),
                 history=history, parent=parent, numerics=numerics.record(),
                 pretrained_weights=pretrained_source(mcfg.name) if mcfg.pretrained else None)
    for ckpt in ("last.pt", "best.pt"):  # finished: the record is what is kept
        (out_dir / ckpt).unlink(missing_ok=True)
    return read_record(out_dir / "record.json")


@torch.no_grad()
def init_classifier_bias(classifier: torch.nn.Module, prior: float) -> None:
    """Every output bias of ``classifier`` (its last linear layer) set to ``-log((1 - prior) / prior)``."""
    last = [m for m in classifier.modules() if isinstance(m, torch.nn.Linear)][-1]
    last.bias.fill_(sigmoid_bias_init(prior))


def frozen_features(model, cfg: ExperimentConfig, test_tf: Callable, parent: tuple[Path, str] | None) -> Callable:
    """``(images, bf16) -> features`` of ``model``'s backbone in evaluation mode (no
    augmentation); with a ``parent`` run ``(folder, run_id)`` that the frozen backbone comes
    from, stored in that folder and shared by every run that starts from it."""
    if parent is None or not cfg.train.classifier_only:
        return lambda images, amp: cached_features(model, images, test_tf, cfg.train.eval_batch_size, amp)
    return lambda images, amp: kept_run_features(*parent, model, images, test_tf, cfg.train, amp)


def evaluate_tests(model, tests: dict, test_tf, cfg: ExperimentConfig, group_counts,
                   frozen: Callable | None = None) -> tuple[dict, dict]:
    """``(metrics, predictions)`` of ``model`` on each test set (name -> (images, labels)), in
    fp32 (ECE and ties need exact logits). With ``frozen`` (a classifier-only run) the backbone
    features come from it and only the classifier runs."""
    metrics, predictions = {}, {}
    for name, (x, y) in tests.items():
        if frozen is None:
            probs = predict(model, x, test_tf, cfg.train.eval_batch_size, amp=False)
        else:
            probs = classifier_probs(model, frozen(x, False), cfg.train.eval_batch_size)
        metrics[name] = evaluate_predictions(probs, y, group_counts, cfg.eval.groups, cfg.eval.n_bins)
        predictions[f"{name}_probs"], predictions[f"{name}_labels"] = probs.astype(np.float32), np.asarray(y)
    return metrics, predictions


def saved_run(run_dir: Path) -> tuple[ExperimentConfig, dict]:
    """The config a run folder was trained under and its record: the record's, or (still
    training or interrupted) the ``config.yaml`` written when it started and no record (``{}``)."""
    run_dir = Path(run_dir)
    if (run_dir / "record.json").exists():
        record = read_record(run_dir / "record.json")
        cfg = validate_config(record_config(record))
        cfg._preset = record.get("preset")
        return cfg, record
    if (run_dir / "config.yaml").exists():
        return validate_config(yaml.safe_load((run_dir / "config.yaml").read_text())), {}
    raise ConfigError(f"{run_dir} is not a run folder (no record.json or config.yaml)")


def evaluate_checkpoint(run_dir, checkpoint=None, data_root=None, device=None) -> dict:
    """Evaluate a kept checkpoint of a run (default: its final ``weights.pt``) on the run's test
    sets, rebuilt from its config and ``data_root`` (default: the folder it trained on if it is
    here, else ``$LTREPRO_DATA`` / ``./data``); returns a record-like dict (no training)."""
    run_dir = Path(run_dir)
    cfg, recorded = saved_run(run_dir)
    checkpoint = Path(checkpoint) if checkpoint else run_dir / "weights.pt"
    if not checkpoint.exists():
        raise CheckpointError(f"{checkpoint} not found: a run keeps its final weights with train.keep_weights "
                              f"(common.train sets it), and last.pt only while it trains")
    device = torch.device(device) if device else default_device()
    trained_on = recorded.get("data_root")
    if data_root is None and trained_on and Path(trained_on).is_dir():
        data_root = trained_on                      # where it trained, when that folder is here
    root = Path(data_root) if data_root else D.default_data_root()
    num_classes = num_classes_of(cfg.data)
    model = build_model(cfg.model.name, num_classes, **cfg.model.kwargs)   # the checkpoint holds every weight
    if cfg.model.lws:
        model.classifier = LearnableWeightScaling(model.classifier, num_classes)
    try:
        model.load_state_dict(load_checkpoint(checkpoint)["model"])
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(f"{checkpoint} does not hold this run's model ({type(err).__name__}: "
                              f"{str(err).splitlines()[0]})") from err
    ds = build_datasets(cfg.data, root)
    tests = {k: (D.to_tensor_images(x, device), y) for k, (x, y) in ds["tests"].items()}
    metrics, _ = evaluate_tests(model.to(device), tests, transforms_from_config(cfg)[1], cfg, ds["group_counts"])
    return {"config": config_record(cfg), "metrics": metrics, "checkpoint": str(checkpoint), "evaluated": now(),
            "environment": environment(),
            "classes": ds["classes"], "train_counts": ds["train_counts"], "preset": cfg.preset,
            "epochs": cfg.train.epochs, "data": data_provenance(cfg.data.dataset, root)}


def indices_hash(indices) -> str:
    """sha256 of the training indices (int64, in training-set order, re-sampled ones repeated):
    two machines that trained on the same images of the (class-selected) training set agree."""
    return hashlib.sha256(np.asarray(indices, dtype="<i8").tobytes()).hexdigest()


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--preset", default=None, help="one of the config file's presets (default: none, the file as is)")
    parser.add_argument("--out", required=True, help="run folder (record.json, log.jsonl, checkpoints)")
    parser.add_argument("--data", default=None, help="data root (default: $LTREPRO_DATA or ./data)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=5 (value parsed as YAML)")
    parser.add_argument("--rerun-stale", action="store_true",
                        help="re-train when --out holds a finished run of another config")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.preset, cli=parse_overrides(args.set))
        rec = run_experiment(cfg, args.out, args.data, args.device, rerun_stale=args.rerun_stale)
    except RUN_ERRORS as err:
        sys.exit(f"error: {err}")
    report_run(rec, Path(args.out), Path(args.out).name)


if __name__ == "__main__":
    main()
