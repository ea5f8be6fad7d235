"""One training loop for every study.

``fit`` trains with SGD or Adam under a per-epoch learning-rate schedule (linear warm-up,
then step / multi-step / cosine / constant), channels_last, bf16 autocast where the hardware
runs it natively (CUDA, CPUs with AMX / AVX-512-BF16; fp16 with loss scaling on older GPUs; see
:mod:`common.precision`), a tqdm
bar, a JSON-lines log, a checkpoint every epoch (``last.pt``, resumed automatically) and
optionally the best-on-validation one (``best.pt``); checkpoints hold tensors and plain data
only and load with ``weights_only=True``. A study changes what one step computes
by passing ``step`` (e.g. several augmented views and experts); a classifier-only second
stage is ``classifier_only=True``; deferred re-weighting rides on ``loss.set_epoch``.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import TrainConfig, config_diff, upgrade_config
from .data.augment import mixup, mixup_loss
from .models.head import fp32_head
from .optim import build_optimizer, lr_factor
from .precision import (Numerics, apply_numerics, autocast, choose_numerics, cpu_runs_bf16_natively,
                        match_memory_format)

REPO = Path(__file__).resolve().parents[1]
LOCK_FILE = REPO / "requirements.lock"


class NonFiniteLossError(RuntimeError):
    pass


class CheckpointError(RuntimeError):
    """A ``last.pt`` that cannot be resumed: not a plain checkpoint, or another config's."""


class WriteFailedError(CheckpointError):
    """A checkpoint or weights file could not be written (a full disk, most often)."""


def _disk_full(err: BaseException) -> bool:
    """ENOSPC anywhere in the chain, or the messages torch's zip writer gives when a write comes up short."""
    while err is not None:
        if getattr(err, "errno", None) == errno.ENOSPC or any(
                m in str(err) for m in ("unexpected pos", "file write failed", "No space left")):
            return True
        err = err.__cause__ or err.__context__
    return False


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = deterministic  # cuDNN's deterministic convolution algorithms only
    torch.backends.cudnn.benchmark = not deterministic


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_step(loss_fn: nn.Module, augment: Callable, mixup_alpha: float = 0.0,
              frozen_backbone: bool = False) -> Callable:
    """The plain step: augment the batch, optional mixup, forward, loss. With
    ``frozen_backbone`` the features are computed without a graph, so nothing runs backward
    through the backbone (a classifier-only stage)."""

    def forward(model, x):
        x = match_memory_format(x, model)
        if not frozen_backbone:
            return model(x)
        with torch.no_grad():
            features = model.forward_features(x)
        return fp32_head(model.classifier, features)

    def step(model, images, labels, indices, epoch):
        x = augment(images)
        if mixup_alpha > 0:
            x, y_a, y_b, lam = mixup(x, labels, mixup_alpha)
            return mixup_loss(loss_fn, forward(model, x), y_a, y_b, lam)
        return loss_fn(forward(model, x), labels)

    return step


def feature_step(loss_fn: nn.Module) -> Callable:
    """The step of a classifier-only stage on cached features: the loader yields features."""
    return lambda model, features, labels, indices, epoch: loss_fn(fp32_head(model.classifier, features), labels)


@torch.no_grad()
def cached_features(model: nn.Module, images: torch.Tensor, transform: Callable, batch_size: int = 500,
                    amp: bool = True) -> torch.Tensor:
    """``model.forward_features`` of every image, in evaluation mode (a frozen backbone's
    BatchNorm statistics), under the precision training would use."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        with autocast(images.device, amp):
            out.append(model.forward_features(match_memory_format(transform(images[start:start + batch_size]), model)))
    return torch.cat(out)


def set_up_numerics(model: nn.Module, cfg: TrainConfig) -> Numerics:
    """The numerics ``cfg`` asks for on the model's device, applied to ``model`` (for probes and benchmarks)."""
    numerics = choose_numerics(next(model.parameters()).device, cfg)
    apply_numerics(model, numerics)
    return numerics


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, transform: Callable, batch_size: int = 500,
            amp: bool = True, forward: Callable | None = None) -> np.ndarray:
    """Softmax probabilities ``N x C`` for uint8 ``images`` (on the model's device)."""
    model.eval()
    device = images.device
    forward = forward or (lambda m, x: F.softmax(m(x).float(), dim=1))
    out = []
    for start in range(0, len(images), batch_size):
        with autocast(device, amp):
            out.append(forward(model, match_memory_format(transform(images[start:start + batch_size]), model)).float())
    return torch.cat(out).cpu().numpy()


@torch.no_grad()
def classifier_probs(model: nn.Module, features: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """Softmax probabilities of ``model.classifier`` on backbone features, in fp32 and in the
    batches :func:`predict` uses (so ``model(x)`` and this agree)."""
    model.eval()
    out = [F.softmax(fp32_head(model.classifier, features[start:start + batch_size]), dim=1)
           for start in range(0, len(features), batch_size)]
    return torch.cat(out).cpu().numpy()


def first_line(err: BaseException) -> str:
    """An error's message for a one-line report: its first line, or its repr when it has none."""
    return (str(err).splitlines() or [repr(err)])[0]


def save_atomic(obj, path: Path) -> None:
    """Write to a temporary file, then rename: a kill or a full disk leaves the old file or the
    new, never half of one. A failed write raises :class:`WriteFailedError` naming the folder."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:    # torch reports a full disk as RuntimeError ("unexpected pos")
        tmp.unlink(missing_ok=True)
        kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
        if _disk_full(err):
            free = shutil.disk_usage(path.parent).free / 2**20 if path.parent.exists() else 0.0
            cause, remedy = f"the disk is full ({free:.1f} MiB free)", "Free some space"
        else:               # not the disk's fault (a folder gone, permissions): the free space would mislead
            cause, remedy = f"{type(err).__name__}: {first_line(err).rstrip('.')}", "Fix that"
        raise WriteFailedError(f"could not write {path.name} in {path.parent}: {cause}; {kept}. {remedy} and run "
                               f"again: the run resumes from its last checkpoint.") from None


def _rng_state(device: torch.device) -> dict:
    """Every RNG the training loop draws from, as tensors and plain numbers (``weights_only`` loadable):
    of the GPUs, the run's own only, so a worker that sees fewer GPUs can resume it."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)},
            "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": py_gauss},
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"].tolist()), p["gauss"]))
    cuda = state.get("cuda")
    if cuda is not None and device.type == "cuda":
        if isinstance(cuda, list):          # written before only the run's own GPU was kept: one per visible GPU
            cuda = cuda[min(device.index or 0, len(cuda) - 1)]
        torch.cuda.set_rng_state(cuda, device)


def load_checkpoint(path: Path, mmap: bool = False) -> dict:
    """A checkpoint of tensors and plain data (``weights_only=True``: nothing in it can run code);
    ``mmap``: its tensors read from the file only when used (to look at its epoch and config)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)  # RNG states must stay on the CPU
    except Exception as err:  # a crafted pickle, a truncated or foreign file
        raise CheckpointError(f"{path} is not a checkpoint this project wrote, so it was not loaded "
                              f"({type(err).__name__}: {first_line(err)}). "
                              f"Delete it to restart the run from scratch.") from err


def same_run(saved, run_config: dict) -> bool:
    """Whether a checkpoint's stored ``run_config`` is ``run_config``'s, also across a schema that
    gained keys since (:func:`common.config.upgrade_config`)."""
    return saved == run_config or (isinstance(saved, dict) and upgrade_config(saved) == run_config)


def _check_same_run(ckpt: dict, run_config: dict, path: Path) -> None:
    saved = ckpt.get("run_config")
    if same_run(saved, run_config):
        return
    changes = config_diff(saved, run_config) if isinstance(saved, dict) else ["(the checkpoint names no config)"]
    raise CheckpointError(
        f"{path} belongs to a run with another config, so it was not resumed:\n  "
        + "\n  ".join(changes[:10]) + ("\n  ..." if len(changes) > 10 else "")
        + f"\nTo restart this run from scratch, delete {path.parent} (or just {path.name}); "
          f"to finish the interrupted run, run it again with its old config.")


def _set_train_mode(model: nn.Module, classifier_only: bool) -> None:
    if classifier_only:  # frozen backbone keeps its BatchNorm statistics
        model.eval()
        model.classifier.train()
    else:
        model.train()


def _train_epoch(model, loader, step, optimizer, scaler, device, cfg, epoch, last, progress,
                 numerics: Numerics) -> tuple[float, int]:
    """One pass over ``loader``; returns the mean training loss and the number of images."""
    seen, total = 0, torch.zeros((), device=device)
    # to a log file (stderr not a terminal) the bar would be redrawn into it: the epoch's line says it all
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
               disable=not progress or not sys.stderr.isatty())
    for batch, (images, labels, indices) in enumerate(bar):
        with numerics.autocast(device):
            loss = step(model, images, labels, indices, epoch)
        # a host sync per step is cheap on CPU; on CUDA look every 25 steps and at the end
        if (device.type != "cuda" or batch % 25 == 0) and not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss became {loss.item()} at epoch {epoch + 1}, batch {batch + 1} "
                f"(lr {optimizer.param_groups[0]['lr']:.3g}); lower the learning rate or check the "
                f"loss inputs. Last good checkpoint: {last if last.exists() else 'none'}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach().float() * len(labels)
        seen += len(labels)
        if batch % 25 == 0:
            bar.set_postfix(loss=f"{total.item() / seen:.4f}")
    mean = total.item() / max(seen, 1)
    if not math.isfinite(mean):
        raise NonFiniteLossError(f"mean loss of epoch {epoch + 1} is {mean}; lower the learning rate "
                                 f"or check the loss inputs. Last good checkpoint: {last}")
    return mean, seen


RESUME_NUMERICS = "LTREPRO_RESUME_NUMERICS"    # native (default) | checkpoint


def run_numerics(out_dir, device: torch.device, cfg: TrainConfig) -> Numerics:
    """The numerics a run in ``out_dir`` trains in on this machine (:func:`resumed_numerics`)."""
    last = Path(out_dir) / "last.pt"
    saved = checkpoint_numerics(load_checkpoint(last), last, device, cfg) if last.exists() else None
    return resumed_numerics(saved, device, cfg)


def resumed_numerics(saved: Numerics | None, device: torch.device, cfg: TrainConfig) -> Numerics:
    """What this machine runs natively (:func:`common.precision.choose_numerics`), also for a run
    resumed from a ``last.pt`` written in other numerics: weights and optimiser state are fp32
    under autocast either way, so the state carries over exactly, and the log says which epochs
    ran in which. ``LTREPRO_RESUME_NUMERICS=checkpoint`` keeps the checkpoint's (``saved``)."""
    choice = os.environ.get(RESUME_NUMERICS, "native")
    if choice not in ("native", "checkpoint"):
        raise CheckpointError(f"{RESUME_NUMERICS}={choice!r}: expected 'native' (this machine's numerics) or "
                              f"'checkpoint' (those the run's last.pt was written in)")
    return saved if saved is not None and choice == "checkpoint" else choose_numerics(device, cfg)


def checkpoint_numerics(ckpt: dict, path: Path, device: torch.device, cfg: TrainConfig) -> Numerics:
    """The numerics ``ckpt`` was written in. A checkpoint from before they were kept was written
    under the old rule: bf16 and channels_last on CUDA only."""
    saved = ckpt.get("numerics")
    if saved is None:
        cuda = device.type == "cuda"
        return Numerics(bf16=cfg.amp and cuda, channels_last=cfg.channels_last and cuda)
    try:
        return Numerics(**saved)
    except TypeError as err:
        raise CheckpointError(f"{path} names numerics this project does not know ({saved}); delete it to restart "
                              f"the run") from err


def fit(model: nn.Module, loader, cfg: TrainConfig, out_dir, *, step: Callable,
        validate: Callable | None = None, classifier_only: bool = False,
        epoch_hooks: tuple = (), progress: bool = True, log_name: str = "log.jsonl",
        run_config: dict | None = None, numerics: Numerics | None = None) -> list[dict]:
    """Train ``model`` for ``cfg.epochs`` epochs, resuming from ``out_dir/last.pt`` if present.

    ``step(model, images, labels, indices, epoch) -> loss``; ``validate(model) -> dict`` with
    at least ``accuracy``; ``epoch_hooks`` are called with the epoch number before it starts
    (``loss.set_epoch`` style). Returns the per-epoch log. With ``cfg.select_best`` the model
    ends holding the best validation checkpoint. ``run_config`` (default: ``cfg``) is stored
    in ``last.pt``; a ``last.pt`` stored under another config is refused, never resumed.
    ``numerics`` (default: :func:`resumed_numerics`) may differ from those of ``last.pt``: every
    logged epoch names the numerics and device it ran in (:func:`training_segments`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_config = cfg.model_dump(mode="json") if run_config is None else run_config
    device = next(model.parameters()).device
    last, best_path = out_dir / "last.pt", out_dir / "best.pt"
    ckpt = load_checkpoint(last) if last.exists() else None
    if ckpt is not None:
        _check_same_run(ckpt, run_config, last)
    started_in = checkpoint_numerics(ckpt, last, device, cfg) if ckpt is not None else None
    numerics = numerics or resumed_numerics(started_in, device, cfg)
    apply_numerics(model, numerics)
    where = device_label(device)
    if progress:
        print(f"training in {numerics.describe()} on {where}", flush=True)
    if classifier_only:
        from .models import freeze_backbone
        freeze_backbone(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, cfg)
    scaler = numerics.grad_scaler(device)
    start, best_acc, history = 0, -1.0, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if numerics.fp16 and ckpt.get("scaler"):       # the loss scale it had reached
            scaler.load_state_dict(ckpt["scaler"])
        start, best_acc = ckpt["epoch"] + 1, ckpt["best_acc"]
        history = with_provenance(ckpt["history"], started_in)
        _set_rng_state(ckpt["rng"], device)
        if start < cfg.epochs and progress:
            print(f"resuming {out_dir} from epoch {start}/{cfg.epochs}"
                  + (f" (epochs 1-{start} ran in {started_in.describe()})" if started_in != numerics else ""))
    else:
        best_path.unlink(missing_ok=True)   # left by a run that died before its first checkpoint
    _write_log(out_dir / log_name, history)  # the log holds exactly the checkpointed epochs
    board = _board(out_dir, log_name, purge_step=start + 1)   # drops events of epochs after the checkpoint

    for epoch in range(start, cfg.epochs):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(epoch, cfg)
        for hook in epoch_hooks:
            hook(epoch)
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        _set_train_mode(model, classifier_only)
        t0 = time.time()
        mean_loss, seen = _train_epoch(model, loader, step, optimizer, scaler, device, cfg, epoch, last, progress,
                                       numerics)
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": mean_loss,
               "images_per_s": seen / max(time.time() - t0, 1e-9), "numerics": numerics.describe(), "device": where}
        is_last = epoch + 1 == cfg.epochs
        if validate is not None and ((epoch + 1) % cfg.eval_every == 0 or is_last):
            row.update({f"val_{k}": v for k, v in validate(model).items() if isinstance(v, (int, float))})
            if cfg.select_best and row["val_accuracy"] > best_acc:
                best_acc = row["val_accuracy"]
                save_atomic({"model": model.state_dict(), "epoch": epoch}, best_path)
        history.append(row)
        save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                      "best_acc": best_acc, "history": history, "rng": _rng_state(device), "run_config": run_config,
                     "numerics": numerics.record(), "scaler": scaler.state_dict()},
                     last)
        with open(out_dir / log_name, "a") as f:
            f.write(json.dumps(row) + "\n")
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                board.add_scalar(key, value, epoch + 1)
        board.flush()
        if progress:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                           if isinstance(v, (int, float))))

    board.close()
    if cfg.select_best and best_path.exists():
        model.load_state_dict(load_checkpoint(best_path)["model"])
    return history


def with_provenance(history: list[dict], numerics: Numerics) -> list[dict]:
    """``history`` with every epoch naming its numerics and device; epochs logged before they
    were kept ran in the checkpoint's ``numerics`` (a run then resumed only in those) on a
    device nobody recorded (None)."""
    return [row if "numerics" in row else {**row, "numerics": numerics.describe(), "device": None}
            for row in history]


def training_segments(history: list[dict]) -> list[dict]:
    """The runs of consecutive epochs trained in the same numerics on the same device, as
    ``{"epochs": [first, last], "numerics": ..., "device": ...}``: one for a run trained in one
    go, more for one resumed on other machines. Epochs from before this was logged have None."""
    segments = []
    for row in history:
        where = {"numerics": row.get("numerics"), "device": row.get("device")}
        if segments and all(segments[-1][k] == v for k, v in where.items()):
            segments[-1]["epochs"][1] = row["epoch"]
        else:
            segments.append({"epochs": [row["epoch"], row["epoch"]], **where})
    return segments


def _board(out_dir: Path, log_name: str, purge_step: int):
    """A TensorBoard writer beside the JSON-lines log: ``tensorboard --logdir results/<study>/runs``."""
    from torch.utils.tensorboard import SummaryWriter    # imports TensorBoard: only when a run trains
    return SummaryWriter(out_dir / "tensorboard" / Path(log_name).stem, purge_step=purge_step)


def _write_log(path: Path, history: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in history))
    os.replace(tmp, path)


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def lock_hash() -> str | None:
    """sha256 of ``requirements.lock``, the exact package set the project is tested with."""
    return hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest() if LOCK_FILE.is_file() else None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def device_label(device: torch.device) -> str:
    """``cpu (Intel(R) Xeon(R) Processor)`` / ``cuda (NVIDIA H100 80GB HBM3)``: the machine behind an epoch."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return f"{device.type} ({name})"


def environment(device: torch.device | str | None = None) -> dict:
    """The software and the machine; ``device`` is the run's (default: the one a run would pick)."""
    import sklearn
    import timm
    import torchvision

    device = torch.device(device) if device is not None else default_device()
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cpu_threads": torch.get_num_threads(), "cpu_bf16_native": cpu_runs_bf16_natively(),
        "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "timm": timm.__version__, "numpy": np.__version__, "sklearn": sklearn.__version__,
        "git_commit": _git_commit(), "requirements_lock_sha256": lock_hash(),
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


