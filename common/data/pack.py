"""A CIFAR pack: the training images some runs need and the test set, in one compressed file.

    python -m common.data.pack --dataset cifar10 --imb-factor 0.01 --data ../shared/data --out packed
    LTREPRO_DATA=packed bash sla_multiexpert/run_all.sh        # on a machine without the dataset

writes ``packed/cifar-10-batches-py.pack.npz``: the long-tailed training subsets of the given
imbalance factors (LDAM-DRW's selection, ``--lt-seed``), every training label (subsets are
chosen from the labels alone), the test set, the class names and where the images came from.
:func:`common.data.load_cifar` reads a pack where the official files are missing; a run that
asks for a training image the pack does not hold stops with a message, never trains on a blank.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..cli import ArgumentParser
from .cifar import LAYOUTS, CifarFormatError, CifarNotFoundError, default_data_root, load_cifar, pack_path, row_deltas
from .longtail import LONGTAIL_PROFILES, longtail_counts, longtail_indices
from .provenance import data_provenance


def write_pack(name: str, root, out_root, positions: np.ndarray, source: str) -> Path:
    """The training images at ``positions`` of dataset ``name`` in ``root``, all training labels
    and the test set, as one compressed file in ``out_root``."""
    train_x, train_y, classes = load_cifar(name, root, train=True)
    test_x, test_y, _ = load_cifar(name, root, train=False)
    positions = np.unique(positions)
    out = pack_path(name, out_root)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, train_images=row_deltas(train_x[positions]), train_positions=positions,
                        train_labels=train_y, test_images=row_deltas(test_x), test_labels=test_y,
                        classes=np.array(classes), source=np.array(source))
    os.replace(tmp, out)
    return out


def longtail_positions(labels: np.ndarray, num_classes: int, imb_factors, profile: str = "exp", lt_seed: int = 0):
    """The union of the long-tailed training subsets at ``imb_factors`` (``None``: every image)."""
    chosen = []
    for factor in imb_factors:
        if factor is None:
            return np.arange(len(labels))
        counts = longtail_counts(int(np.bincount(labels).max()), num_classes, factor, profile)
        chosen.append(longtail_indices(labels, counts, lt_seed))
    return np.unique(np.concatenate(chosen))


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=sorted(LAYOUTS))
    parser.add_argument("--imb-factor", type=float, nargs="+", required=True, metavar="F",
                        help="n_min / n_max of each long-tailed training set to hold (e.g. 0.005 0.01 0.02 0.1); "
                             "1 holds the whole training set")
    parser.add_argument("--profile", default="exp", choices=LONGTAIL_PROFILES)
    parser.add_argument("--lt-seed", type=int, default=0, help="data.lt_seed of the runs (LDAM-DRW's selection seed)")
    parser.add_argument("--data", type=Path, default=None, help="folder with the official files (default: $LTREPRO_DATA)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the pack in (use it as LTREPRO_DATA)")
    args = parser.parse_args(argv)
    for f in args.imb_factor:
        if not 0 < f <= 1:
            parser.error(f"--imb-factor is n_min / n_max in (0, 1]; got {f:g}" + (f" (ratio {f:g} is {1 / f:.6g})" if f > 1 else ""))
    root = args.data or default_data_root()
    try:
        labels = load_cifar(args.dataset, root, train=True)[1]
        positions = longtail_positions(labels, LAYOUTS[args.dataset].num_classes,
                                       [None if f == 1 else f for f in args.imb_factor], args.profile, args.lt_seed)
        out = write_pack(args.dataset, root, args.out, positions, data_provenance(args.dataset, root))
    except (CifarNotFoundError, CifarFormatError) as err:
        parser.exit(1, f"error: {err}\n")
    print(f"wrote {out}: {len(positions)} training images, the test set, {out.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
