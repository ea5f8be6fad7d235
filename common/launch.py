"""Run a study's grid with several workers, on this machine or as a SLURM job array (submitit).

    python -m common.launch --launcher local --workers 2 -- thesis_cifar100lt.grid --preset smoke --data DIR
    python -m common.launch --launcher local --workers-per-gpu 8 -- sla_multiexpert.grid --preset paper --data DIR
    python -m common.launch --launcher slurm --workers 16 --partition gpu --time 2880 \\
        --then "sla_multiexpert.report --preset paper" -- sla_multiexpert.grid --preset paper --data /data

Every worker runs the same grid command. The runs' claims (:func:`common.runstore.claim`)
share the work: each run is trained once, a worker passes over runs another one holds, and at
the end waits for them, taking a run over when its holder died. ``local`` starts the workers
through submitit's local executor, spread over the machine's GPUs (one per GPU, or
``--workers-per-gpu`` N) with an equal share of the CPU cores each; ``slurm`` submits
them as one job array and the ``--then`` command (the report) as a job that starts after the
array; ``debug`` runs them one after the other in this process (submitit's debug executor).
"""
from __future__ import annotations

import importlib
import os
import shlex
import sys
from pathlib import Path

import submitit

from .cli import ArgumentParser

LAUNCHERS = {"local": "local", "slurm": "slurm", "debug": "debug"}   # ours -> submitit's cluster name


def run_module(command: list[str], gpu: str | None = None, threads: int | None = None) -> int:
    """One worker: ``python -m`` ``command`` in this process; its exit status. ``gpu``: the only
    device it sees (set before CUDA starts); ``threads``: its share of the CPU cores."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    if threads is not None:
        import torch
        torch.set_num_threads(threads)
    module, *argv = command
    try:
        importlib.import_module(module).main(argv)
    except SystemExit as done:
        if done.code not in (None, 0):
            print(done.code if isinstance(done.code, str) else f"exit status {done.code}", file=sys.stderr)
            return done.code if isinstance(done.code, int) else 1
    return 0


def visible_gpus() -> list[str]:
    """The GPUs this process may use, by the ids CUDA_VISIBLE_DEVICES gives them (or all)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g for g in listed.split(",") if g.strip()]
    try:
        import torch
        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:   # no usable CUDA: CPU workers
        return []


def build_executor(launcher: str, folder: Path, workers: int, args) -> submitit.Executor:
    executor = submitit.AutoExecutor(folder=folder, cluster=LAUNCHERS[launcher])
    no_limit = 60 * 24 * 365          # local workers end with their grid, not on a clock
    params = {"timeout_min": args.time or (24 * 60 if launcher == "slurm" else no_limit), "name": args.name}
    if launcher == "slurm":
        params |= {"slurm_partition": args.partition, "gpus_per_node": args.gpus_per_worker,
                   "cpus_per_task": args.cpus_per_worker, "slurm_array_parallelism": workers,
                   **({"mem_gb": args.mem_gb} if args.mem_gb else {})}
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def launch(launcher: str, workers: int, grid: list[str], then: list[str] | None, args) -> int:
    folder = Path(args.logs)
    gpus = visible_gpus() if launcher == "local" else []
    if launcher == "local" and workers <= 0:
        workers = max(1, len(gpus) * getattr(args, "workers_per_gpu", 1))
    per_worker = [gpus[i % len(gpus)] if gpus else None for i in range(workers)]
    # local workers share this machine's cores; a CIFAR ResNet fills a fraction of a large GPU, so
    # several workers per GPU keep it busy, each with its share of the cores for augmentation and the host
    threads = [max(1, len(os.sched_getaffinity(0)) // workers) if launcher == "local" else None] * workers
    executor = build_executor(launcher, folder, workers, args)
    jobs = executor.map_array(run_module, [grid] * workers, per_worker, threads)
    print(f"{launcher}: {workers} worker(s) on `{' '.join(grid)}`" + (f", GPUs {per_worker}" if gpus else "")
          + (f", {threads[0]} CPU thread(s) each" if threads[0] else "")
          + f"; their output: {folder}/<job id>_0_log.out (e.g. tail -f {folder}/*_log.out)", flush=True)
    if launcher == "slurm":
        print(f"submitted job array {jobs[0].job_id.split('_')[0]}", flush=True)
        if then:
            executor.update_parameters(slurm_array_parallelism=None, gpus_per_node=0,
                                       slurm_additional_parameters={"dependency": f"afterany:{jobs[0].job_id.split('_')[0]}"})
            report = executor.submit(run_module, then)
            print(f"submitted `{' '.join(then)}` as job {report.job_id}, to start when the array has ended", flush=True)
        return 0
    failed = [i for i, job in enumerate(jobs) if _status(job) != 0]
    if failed:
        print(f"worker(s) {failed} failed: see their logs in {folder}/", file=sys.stderr)
        return 1
    return run_module(then) if then else 0


def _status(job) -> int:
    try:
        return job.result()
    except Exception as err:     # killed, timed out, or raised: submitit re-raises it here
        print(f"worker {job.job_id}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
              file=sys.stderr)
        return 1


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        sys.exit("usage: python -m common.launch [options] -- GRID_MODULE [grid options] (see --help)")
    split = argv.index("--")
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launcher", required=True, choices=LAUNCHERS)
    parser.add_argument("--workers", type=int, default=0,
                        help="how many workers (default: one per visible GPU, or 1; slurm: required)")
    parser.add_argument("--workers-per-gpu", type=int, default=1,
                        help="local, unless --workers is given: this many workers on each visible GPU (small CIFAR models "
                             "fill a fraction of a large GPU; e.g. 8 on one H100 / H200)")
    parser.add_argument("--then", default=None, help="a command to run once every worker has finished, e.g. the report")
    parser.add_argument("--logs", default="logs/launch", help="submitit's folder (workers' output and errors)")
    parser.add_argument("--name", default="ltrepro", help="job name")
    parser.add_argument("--time", type=int, default=None,
                        help="minutes each worker may run (default: slurm 1440, local no limit)")
    parser.add_argument("--partition", default=None, help="slurm partition")
    parser.add_argument("--gpus-per-worker", type=int, default=1, help="slurm: GPUs per worker")
    parser.add_argument("--cpus-per-worker", type=int, default=8, help="slurm: CPU cores per worker")
    parser.add_argument("--mem-gb", type=int, default=None, help="slurm: memory per worker")
    args = parser.parse_args(argv[:split])
    grid = argv[split + 1:]
    if not grid:
        parser.error("give the grid command after --, e.g. -- thesis_cifar100lt.grid --preset smoke --data DIR")
    if args.workers_per_gpu < 1:
        parser.error(f"--workers-per-gpu is at least 1; got {args.workers_per_gpu}")
    if args.launcher == "slurm" and args.workers <= 0:
        parser.error("--launcher slurm needs --workers N (the job array's size)")
    sys.exit(launch(args.launcher, args.workers, grid, shlex.split(args.then) if args.then else None, args))


if __name__ == "__main__":
    main()
