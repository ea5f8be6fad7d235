"""Make sure CIFAR datasets are on disk, downloading what is missing (a command-line tool)."""
from __future__ import annotations

from ..cli import ArgumentParser
from .cifar import LAYOUTS, default_data_root, load_cifar


def main(argv=None):
    """``python -m common.data.fetch --root DIR cifar10 cifar100``: make sure the datasets are
    there, downloading what is missing; exits 1 with the reason when that cannot be done."""
    import sys

    parser = ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", choices=sorted(LAYOUTS))
    parser.add_argument("--root", default=None)
    args = parser.parse_args(argv)
    for name in args.datasets:
        for train in (True, False):
            try:
                load_cifar(name, args.root, train, download=True)
            except Exception as err:  # no network, damaged files: one clear line, no traceback
                sys.exit(f"{name} is not available under {args.root or default_data_root()} and could not be "
                         f"downloaded ({type(err).__name__}: {str(err).splitlines()[0]}). Set LTREPRO_DATA.")
        print(f"{name}: ready in {args.root or default_data_root()}")


if __name__ == "__main__":
    main()
