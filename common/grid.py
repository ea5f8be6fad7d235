"""Work through a study's runs: skip finished ones, report stale ones, leave the ones another
process is training and come back to them at the end.

Several invocations of one grid on one results folder (processes, or machines on a shared
file system) share the work through the runs' claims (:func:`common.experiment.claim`): each
run is trained once, and a run whose process died is taken over by whoever waits on it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import ExperimentConfig
from .engine import CheckpointError, NonFiniteLossError
from .experiment import RunClaimedError, StaleRunError, run_experiment


@dataclass
class Job:
    name: str
    config: ExperimentConfig
    out_dir: Path


def accuracies(record: dict) -> str:
    return "  ".join(f"{k} {100 * m['accuracy']:.2f}%" for k, m in record["metrics"].items())


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
        print(f"== waiting for {job.name} (another process is training it)", flush=True)
        attempt(job, wait=True)
    if stale:
        print(f"{len(stale)} stale run(s), finished under another config and kept as they are (re-run them with "
              f"--rerun-stale): {', '.join(stale)}", flush=True)
    if failed:
        sys.exit(f"{len(failed)} run(s) failed (messages above): {', '.join(failed)}")
    return records
