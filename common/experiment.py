"""Config-driven single run: data -> model -> loss -> fit -> evaluate -> ``record.json``.

    python -m common.experiment CONFIG.yaml --preset smoke --out results/runs/NAME [--set train.epochs=5]

The config (see :mod:`common.config`) is validated before anything is read or trained. A run
folder is claimed with a file lock while it trains, so several processes (or machines on a
shared file system) can work through one grid; a finished run (``record.json``) is skipped
when its config is the one asked for and reported as stale when it is not.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import yaml

from . import data as D
from .cli import ArgumentParser
from .config import (ConfigError, ExperimentConfig, config_hash, config_record, load_config,
                     parse_overrides)
from .data.provenance import data_provenance
from .datasets import build_datasets, indices_hash, num_classes_of, transforms_from_config
from .engine import (CheckpointError, NonFiniteLossError, default_device, feature_step, fit, load_checkpoint,
                     make_step, now, predict, run_numerics, save_atomic, seed_everything, training_segments)
from .evaluation import evaluate_tests, frozen_features
from .losses import build_loss, sigmoid_bias_init
from .methods import get_method
from .models import LearnableWeightScaling, build_model, pretrained_source, scale_logits
from .precision import Numerics
from .report import report_run
from .runstore import (DamagedRecordError, ParentNotFinishedError, ResultsNotWritableError, RunClaimedError,
                       StaleRunError, claim, finished_record, parent_record, prepare_folder, read_record,
                       save_predictions, write_record)


# what a command line reports in one message (no traceback): the user's input or files are at fault
RUN_ERRORS = (ConfigError, D.CifarError, CheckpointError, StaleRunError, RunClaimedError, ResultsNotWritableError,
              NonFiniteLossError, ParentNotFinishedError, DamagedRecordError)


def loss_from_config(cfg: ExperimentConfig, class_counts) -> torch.nn.Module:
    """The ``loss`` section (``name`` plus keyword arguments) built for these class counts."""
    return build_loss(class_counts=class_counts, **cfg.loss.model_dump())


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
    prepare_folder(out_dir)
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
    scale_logits(model, loss_fn.logit_scale)       # the model outputs the logits the loss sees
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
    write_record(out_dir, run_config, metrics, started, device=device, config_hash=config_hash(run_config), preset=cfg.preset,
                 epochs=tcfg.epochs, data=data_provenance(cfg.data.dataset, root), data_root=str(root),
                 train_counts=ds["train_counts"], group_counts=ds["group_counts"], classes=ds["classes"],
                 train_indices_sha256=indices_hash(ds["train_indices"]),
                 history=history, segments=training_segments(history), parent=parent, numerics=numerics.record(),
                 logit_scale=loss_fn.logit_scale,
                 pretrained_weights=pretrained_source(mcfg.name) if mcfg.pretrained else None)
    for ckpt in ("last.pt", "best.pt"):  # finished: the record is what is kept
        (out_dir / ckpt).unlink(missing_ok=True)
    return read_record(out_dir / "record.json")


@torch.no_grad()
def init_classifier_bias(classifier: torch.nn.Module, prior: float) -> None:
    """Every output bias of ``classifier`` (its last linear layer) set to ``-log((1 - prior) / prior)``."""
    last = [m for m in classifier.modules() if isinstance(m, torch.nn.Linear)][-1]
    last.bias.fill_(sigmoid_bias_init(prior))


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
