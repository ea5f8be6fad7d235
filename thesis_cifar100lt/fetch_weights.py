"""Download every pretrained weight file the thesis grid needs into the library caches.

    python -m thesis_cifar100lt.fetch_weights

Run it on a machine with network (e.g. a cluster's login node), then make the caches it prints
visible to the offline compute nodes (copy them, or share TORCH_HOME / HF_HOME).
"""
from __future__ import annotations

import sys

from common.cli import ArgumentParser
from common.models import PretrainedWeightsUnavailable, build_model, pretrained_source

from .grid import MODEL_KWARGS, MODELS


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS, help="default: all four")
    args = parser.parse_args(argv)
    for name in args.models:
        src = pretrained_source(name)
        print(f"{name}: {src['weights']} from {src['url']}", flush=True)
        try:
            build_model(name, 100, pretrained=True, **MODEL_KWARGS.get(name, {}))
        except PretrainedWeightsUnavailable as err:
            sys.exit(f"error: {str(err).splitlines()[0]} (no network here? run this where there is)")
        print(f"  cached in {src['cache_file']}")


if __name__ == "__main__":
    main()
