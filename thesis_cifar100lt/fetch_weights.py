"""Download every pretrained weight file the thesis grid needs into the library caches.

    python -m thesis_cifar100lt.fetch_weights

Run it on a machine with network (e.g. a cluster's login node), then make the caches it prints
visible to the offline compute nodes (copy them, or share TORCH_HOME / HF_HOME).
"""
from __future__ import annotations

from common.models import build_model, pretrained_source

from .grid import MODEL_KWARGS, MODELS


def main():
    for name in MODELS:
        src = pretrained_source(name)
        print(f"{name}: {src['weights']} from {src['url']}", flush=True)
        build_model(name, 100, pretrained=True, **MODEL_KWARGS.get(name, {}))
        print(f"  cached in {src['cache_file']}")


if __name__ == "__main__":
    main()
