"""The thesis grid: 4 models x 7 losses x 2 training sets = 56 runs, in one process, resumably.

    python -m thesis_cifar100lt.grid --preset smoke --data DIR [--models ...] [--losses ...] [--only 'resnet50__*']
    python -m thesis_cifar100lt.grid --preset paper --plan   # list + time estimate; needs no data
    python -m thesis_cifar100lt.grid --preset paper --data DIR --show-config --models resnet50

Before anything trains (presets with pretrained weights) every model is built once with its
ImageNet weights, so a machine without network stops at once with the list of weight files
it needs and the cache paths to put them in (``python -m thesis_cifar100lt.fetch_weights``
fills those caches on a machine with network).
"""
from __future__ import annotations

import itertools
from pathlib import Path

from common.config import load_config
from common.grid import preflight_weights as grid_preflight
from common.grid import print_plan
from common.losses import LOSSES as REGISTERED_LOSSES
from common.study import Run, Study, grid_main

HERE = Path(__file__).parent
BASE_CONFIG = HERE / "configs" / "base.yaml"
MODELS = ["resnet50", "mobilenet_v2", "convnext_base", "vit_base_patch16_224"]
LOSSES = ["ce", "focal", "wce", "cb", "bs", "seql", "ldam"]
TRAIN_SETS = ["balanced", "long_tailed"]
GRID_KEYS = ("model.name", "loss.name", "data.train_set", "train.seed")   # set per run: --models / ... / --seeds
MODEL_KWARGS = {"vit_base_patch16_224": {"dynamic_img_size": True}}  # inputs below 224 px in smoke / quick


def grid(models=MODELS, losses=LOSSES, train_sets=TRAIN_SETS):
    """``(run name, config overrides)`` for every cell, in run order."""
    for model, train_set, loss in itertools.product(models, train_sets, losses):
        overrides = {"model": {"name": model, "kwargs": MODEL_KWARGS.get(model, {})},
                     "loss": {"name": loss}, "data": {"train_set": train_set}}
        yield f"{model}__{loss}__{train_set}", overrides


def config(preset: str, overrides: dict, cli: dict | None = None):
    """One run's validated config: the base file, the preset, the run's cell, then ``--set``."""
    return load_config(BASE_CONFIG, preset, overrides, cli)


FETCH_HINT = ("On a machine with network run `python -m thesis_cifar100lt.fetch_weights` and copy the torch hub "
              "and Hugging Face caches listed above to this machine (or set TORCH_HOME / HF_HOME).")


def preflight_weights(preset: str, models, cli: dict | None = None) -> None:
    """Build each model with its pretrained weights now; on failure name every missing file."""
    grid_preflight([config(preset, {"model": {"name": m, "kwargs": MODEL_KWARGS.get(m, {})}}, cli) for m in models],
                   FETCH_HINT)


def options(parser) -> None:
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--losses", nargs="+", default=LOSSES, choices=sorted(REGISTERED_LOSSES),
                        help="default: the thesis's seven; any loss registered in common.losses runs beside them")
    parser.add_argument("--train-sets", nargs="+", default=TRAIN_SETS, choices=TRAIN_SETS)


def jobs(preset: str, root: Path, cli: dict, args) -> list:
    cells = grid(getattr(args, "models", MODELS), getattr(args, "losses", LOSSES), getattr(args, "train_sets", TRAIN_SETS))
    return [Run(name, BASE_CONFIG, overrides).job(preset, root, cli) for name, overrides in cells]


STUDY = Study("thesis_cifar100lt", HERE, __doc__.splitlines()[0], (BASE_CONFIG,), jobs=jobs, plan=print_plan,
              options=options, fixed_keys=GRID_KEYS, fetch_hint=FETCH_HINT)


def main(argv=None):
    grid_main(STUDY, argv)


if __name__ == "__main__":
    main()
