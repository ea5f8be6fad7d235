"""Work through a study's runs: skip finished ones, report stale ones, leave the ones another
process is training and come back to them at the end.

Several invocations of one grid on one results folder (processes, or machines on a shared
file system) share the work through the runs' claims (:func:`common.runstore.claim`): each
run is trained once, and a run whose process died is taken over by whoever waits on it.
``probe_throughput`` times a config's training step and evaluation, for run plans (on a CPU at
small batches: bounded memory).
"""
from __future__ import annotations

import fnmatch
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .cli import seed_list
from .config import ConfigError, ExperimentConfig, deep_merge
from .engine import CheckpointError, NonFiniteLossError, autocast, make_step, predict, seed_everything, set_up_numerics
from .datasets import num_classes_of, planned_sizes, transforms_from_config
from .experiment import loss_from_config, run_experiment
from .models import PretrainedWeightsUnavailable, build_model
from .profiling import forward_flops, seconds_per_call
from .runstore import (DamagedRecordError, ParentNotFinishedError, RunClaimedError, StaleRunError, read_record,
                       run_progress, seed_root)


@dataclass
class Job:
    name: str
    config: ExperimentConfig
    out_dir: Path


def add_grid_arguments(parser, default_out: str) -> None:
    """The options every study's grid takes: ``--out``, ``--set``, ``--rerun-stale``, ``--seeds``."""
    parser.add_argument("--out", default=default_out, help="results folder (runs go to OUT/<preset>/)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override the preset for every run, e.g. --set train.epochs=1 (needs its own --out)")
    parser.add_argument("--rerun-stale", action="store_true",
                        help="re-train runs that finished under another config (default: report them, keep them)")
    parser.add_argument("--seeds", type=seed_list, default=None, metavar="S,S,...",
                        help="run the whole grid once per training seed (train.seed; the long-tailed selection "
                             "keeps its own seed): the configs' seed in OUT/<preset>/, seed S in OUT/<preset>@seedS/")


def add_selection_arguments(parser, what: str = "run") -> None:
    """``--only PATTERN ...`` and ``--list`` for a grid whose runs have names."""
    parser.add_argument("--only", nargs="+", default=None, metavar="PATTERN",
                        help=f"{what} names or shell-style patterns, e.g. 'cifar10_*' (see --list)")
    parser.add_argument("--list", action="store_true", help=f"print the {what} names (after --only) and exit")


def select(names, patterns, what: str = "run") -> list[str]:
    """The ``names`` matching any of ``patterns`` (all without patterns), in order; a pattern
    that matches nothing is an error, not a silent no-op."""
    if patterns is None:
        return list(names)
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if unmatched:
        raise ConfigError(f"--only: no {what} matches {', '.join(map(repr, unmatched))} (see --list)")
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def matching(jobs: list[Job], patterns) -> list[Job]:
    """The jobs whose names match one of ``patterns`` (all of them without patterns)."""
    return jobs if patterns is None else [j for j in jobs if any(fnmatch.fnmatchcase(j.name, p) for p in patterns)]


def seed_plan(out, preset: str, seeds, own_seed: int, cli: dict) -> list[tuple[Path, dict]]:
    """(results root, the ``--set`` overrides with that seed) per seed; without seeds one root, ``cli``."""
    if not seeds:
        return [(Path(out) / preset, cli)]
    if "seed" in cli.get("train", {}):
        raise ConfigError("--set train.seed and --seeds both choose the seed: give --seeds only")
    return [(seed_root(out, preset, s, own_seed), deep_merge(cli, {"train": {"seed": s}})) for s in seeds]


def accuracies(record: dict) -> str:
    return "  ".join(f"{k} {100 * m['accuracy']:.2f}%" for k, m in record["metrics"].items())


def preflight_weights(configs, fetch_hint: str) -> None:
    """Build every pretrained model the configs use, once each, before anything trains; without
    network and cache, exit naming every missing weight file and where it belongs."""
    problems, seen = [], set()
    for cfg in configs:
        key = (cfg.model.name, json.dumps(cfg.model.kwargs, sort_keys=True))
        if not cfg.model.pretrained or key in seen:
            continue
        seen.add(key)
        try:
            build_model(cfg.model.name, num_classes_of(cfg.data), pretrained=True, **cfg.model.kwargs)
        except PretrainedWeightsUnavailable as err:
            problems.append(str(err))
    if problems:
        sys.exit("Pretrained weights are missing and cannot be downloaded here; nothing was trained.\n\n"
                 + "\n\n".join(problems) + f"\n\n{fetch_hint}")


def run_jobs(jobs: list[Job], data_root, *, progress: bool = True, rerun_stale: bool = False,
             describe: Callable[[dict], str] = accuracies) -> dict[str, dict]:
    """Run every job; returns the records by job name. Exits non-zero (after the other runs)
    when a run failed; stale runs are listed and left as they are unless ``rerun_stale``."""
    records, busy, stale, failed = {}, [], [], []

    def attempt(job: Job, wait: bool) -> None:
        try:
            records[job.name] = rec = run_experiment(job.config, job.out_dir, data_root, progress=progress,
                                                     wait=wait, rerun_stale=rerun_stale)
            print("   " + describe(rec), flush=True)
        except RunClaimedError:
            print("   claimed by another process: coming back to it at the end", flush=True)
            busy.append(job)
        except ParentNotFinishedError as err:
            if wait:
                print(f"   FAILED: {err}", flush=True)
                failed.append(job.name)
            else:
                print("   its parent run has not finished: coming back to it at the end", flush=True)
                busy.append(job)
        except StaleRunError as err:
            print(f"   STALE: {err}", flush=True)
            stale.append(job.name)
        except (NonFiniteLossError, CheckpointError) as err:
            print(f"   FAILED: {err}", flush=True)
            failed.append(job.name)

    for i, job in enumerate(jobs, 1):
        print(f"== [{i}/{len(jobs)}] {job.name}", flush=True)
        attempt(job, wait=False)
    for job in list(busy):
        print(f"== waiting for {job.name} (another process is training it or its parent)", flush=True)
        attempt(job, wait=True)
    if stale:
        print(f"{len(stale)} stale run(s), finished under another config and kept as they are (re-run them with "
              f"--rerun-stale): {', '.join(stale)}", flush=True)
    if failed:
        sys.exit(f"{len(failed)} run(s) failed (messages above): {', '.join(failed)}")
    return records


def probe_batches(tcfg, device) -> tuple[int, int]:
    """(train, eval) batch sizes of a plan's probe: the config's on a GPU (where the runs train
    with them); on a CPU at most two 224-px images' worth of pixels and 16 images, so that a
    probe of ConvNeXt-Base (a training step with Adam) stays near 3 GB."""
    if device.type == "cuda":
        return tcfg.batch_size, tcfg.eval_batch_size
    cap = max(1, min(16, 2 * 224 ** 2 // (tcfg.size or 32) ** 2))
    return min(tcfg.batch_size, cap), min(tcfg.eval_batch_size, cap)


# What a plan's compute costs on a modern GPU: the dense bf16 peak of an H100 / H200 (SXM) and
# the share of it a run is taken to sustain. Small CIFAR models sustain far less, so the hours
# are a lower bound; the FLOPs (forward x 3 per training image, x 1 per evaluated one) are exact.
GPU_NAME, GPU_PEAK_FLOPS, GPU_SUSTAINED = "H100 / H200", 989e12, 0.40


def total_line(seconds: float, flops: float, device, note: str = "") -> str:
    """A plan's last line: the probed time on ``device`` and what the same FLOPs take on a modern GPU."""
    gpu_hours = flops / (GPU_PEAK_FLOPS * GPU_SUSTAINED) / 3600
    gpu = f"{gpu_hours:,.2f} GPU h" if gpu_hours >= 0.1 else f"{gpu_hours * 60:.2g} GPU min"
    return (f"total ~{seconds / 3600:,.1f} h on {device}{note}; {flops / 1e15:,.4g} PFLOP, about {gpu} "
            f"on one {GPU_NAME} at {GPU_SUSTAINED:.0%} of its {GPU_PEAK_FLOPS / 1e12:.0f} TFLOP/s bf16 peak "
            f"(a lower bound: small CIFAR models sustain less)")


def probe_line(cfg, device, train_ips: float, eval_ips: float) -> str:
    """A plan's line for one probe, e.g. ``probe resnet50 at 224 px, batch 2 / eval 2 (the runs:
    128 / 500): train 3.9 images/s, eval 15.9 images/s``."""
    t = cfg.train
    train_bs, eval_bs = probe_batches(t, device)
    return (f"  probe {cfg.model.name} at {t.size or 32} px, batch {train_bs} / eval {eval_bs} (the runs: "
            f"{t.batch_size} / {t.eval_batch_size}): train {train_ips:.1f} images/s, eval {eval_ips:.1f} images/s")


def probe_throughput(model, cfg, device, steps: int = 3) -> tuple[float, float]:
    """(train, eval) images/s of a few steps of ``cfg``'s plain training step and of its
    evaluation, on random CIFAR-sized images, at :func:`probe_batches` (for run plans: a figure,
    never a test limit)."""
    tcfg = cfg.train
    seed_everything(tcfg.seed, tcfg.deterministic)  # cuDNN settings as in the run
    set_up_numerics(model, tcfg)
    augment, test_tf = transforms_from_config(cfg)
    num_classes = num_classes_of(cfg.data)
    step = make_step(loss_from_config(cfg, [1] * num_classes).to(device), augment(tcfg.augment), tcfg.mixup_alpha)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    train_bs, eval_bs = probe_batches(tcfg, device)
    x = torch.randint(0, 256, (max(train_bs, eval_bs), 3, 32, 32), dtype=torch.uint8, device=device)
    y = torch.randint(0, num_classes, (train_bs,), device=device)

    def train_step():
        with autocast(device, tcfg.amp):
            loss = step(model, x[:train_bs], y, None, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    train_ips = train_bs / seconds_per_call(train_step, device, steps)
    eval_s = seconds_per_call(lambda: predict(model, x[:eval_bs], test_tf, eval_bs, tcfg.amp), device, 1)
    return train_ips, eval_bs / eval_s


def probe_model(cfg, device) -> tuple[float, float, float, float]:
    """``(train images/s, eval images/s, forward FLOPs per training image, per test image)`` of
    ``cfg``'s model from :func:`probe_throughput`; prints the probe's line."""
    model = build_model(cfg.model.name, num_classes_of(cfg.data), **cfg.model.kwargs).to(device)
    train_ips, eval_ips = probe_throughput(model, cfg, device)
    flops = forward_flops(model, cfg.train.size or 32)
    print(f"{probe_line(cfg, device, train_ips, eval_ips)}, {flops / 1e9:.2f} GFLOPs per forward", flush=True)
    return train_ips, eval_ips, flops, flops


def print_plan(preset: str, jobs: list[Job], device, probe: Callable = probe_model) -> None:
    """Every job with its time on ``device``, its compute and where it stands, from one ``probe``
    per model and input size and the sizes of its split's definition (no data needed): the
    training epochs, the per-epoch validation and the final test sets. Classifier-only runs that
    start from one kept run share one stored pass of its backbone (:mod:`common.features`): the
    first pays it. The total says how much of it is left: finished runs need nothing more, one
    in flight its epochs after its ``last.pt``, any other (stale, or a ``last.pt`` of another
    config) all of it (runs move between machines: a plan on the next one says what is left)."""
    probes, passes, total, total_flops, left = {}, set(), 0.0, 0.0, 0.0
    finished = in_flight = 0
    print(f"plan: preset {preset}, {len(jobs)} runs, device {device}")
    for job in jobs:
        cfg, t = job.config, job.config.train
        key = (cfg.model.name, t.size, json.dumps(cfg.model.kwargs, sort_keys=True))
        if key not in probes:
            probes[key] = probe(cfg, device)
        train_ips, eval_ips, train_forward, test_forward = probes[key]
        trained, evaluated, validated = planned_sizes(cfg.data)
        if t.classifier_only:
            source = (job.out_dir.parent / cfg.model.init_from).resolve()      # each seed's own stage 1
            passed = (trained + evaluated) if source not in passes else 0
            passes.add(source)
            seconds, flops = passed / eval_ips, test_forward * passed
        else:
            scored = evaluated + t.epochs * validated
            seconds = t.epochs * trained / train_ips + scored / eval_ips
            flops = train_forward * 3 * t.epochs * trained + test_forward * scored
        state, done = run_progress(job.out_dir, cfg)
        finished += done is None
        in_flight += bool(done)
        left += 0.0 if done is None else seconds * (1 - done / t.epochs)
        total, total_flops = total + seconds, total_flops + flops
        print(f"  {job.name:40s} {t.epochs:4d} epochs x {trained:5d} images ~{seconds / 3600:7.2f} h "
              f"{flops / 1e15:9.3g} PFLOP  {state}", flush=True)
    progress = f" ({left / 3600:,.1f} h of it left: {finished} finished, {in_flight} in flight)"
    print(total_line(total, total_flops, device, progress if finished or in_flight else ""))


# what a finished run keeps in a study's results folder (its weights and checkpoints stay where it trained)
KEPT_FILES = ("record.json", "log.jsonl", "config.yaml", "predictions.npz")
GRID_FILES = ("chosen.json",)      # written by a grid at its root (ee443: each dataset's sweep choice)


def copy_finished(src: Path, dst: Path, preset: str | None = None) -> list[str]:
    """Copy the kept files of every run under ``src`` that has finished (``record.json``) to the
    same place under ``dst`` (only ``src/<preset>`` and its seed folders when ``preset`` is
    given), unless ``dst`` holds that very run or one finished later; returns the runs copied.
    A grid root's own files (``GRID_FILES``) come along where newer than ``dst``'s.
    For grids trained outside the checkout (``OUT=DIR bash STUDY/run_all.sh``)."""
    import shutil

    def wanted(root: str) -> bool:          # a grid root (top folder) that --preset selects
        return preset is None or root == preset or root.startswith(f"{preset}@seed")

    for grid_file in (f for name in GRID_FILES for f in sorted(Path(src).glob(f"*/{name}"))):
        target = Path(dst) / grid_file.parent.name / grid_file.name
        if not wanted(grid_file.parent.name):
            continue
        if not target.exists() or target.stat().st_mtime < grid_file.stat().st_mtime:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(grid_file, target)
    copied = []
    for record in sorted(Path(src).rglob("record.json")):
        run = record.parent.relative_to(src)
        if not wanted(run.parts[0]):
            continue
        target = Path(dst) / run
        try:
            new = read_record(record)
            old = read_record(target / "record.json") if (target / "record.json").exists() else None
        except DamagedRecordError as err:
            print(f"warning: not copied: {err}", file=sys.stderr)
            continue
        if old is not None and (old.get("run_id") == new.get("run_id") or old.get("finished", "") > new.get("finished", "")):
            if old.get("run_id") != new.get("run_id"):
                print(f"warning: {target} holds a run finished later than {record.parent}'s; kept", file=sys.stderr)
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name in KEPT_FILES[1:] + KEPT_FILES[:1]:         # the record last: a copy cut short reads as unfinished
            if (record.parent / name).exists():
                shutil.copy2(record.parent / name, target / name)
        copied.append(str(run))
    return copied


def main(argv=None):
    """python -m common.grid copy-finished SRC DST [--preset P]: the finished runs under SRC into DST (copy_finished)."""
    from .cli import ArgumentParser

    parser = ArgumentParser(description="Copy the finished runs of a grid trained elsewhere into a results folder.")
    parser.add_argument("command", choices=["copy-finished"])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--preset", default=None, help="only SRC/PRESET and its seed folders")
    args = parser.parse_args(argv)
    if not args.src.is_dir():
        parser.error(f"{args.src} is not a folder")
    copied = copy_finished(args.src, args.dst, args.preset)
    print(f"copied {len(copied)} finished run(s) from {args.src} to {args.dst}" + "".join(f"\n  {r}" for r in copied))


if __name__ == "__main__":
    main()
