"""Where a dataset's images come from, as records and tables name it."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .cifar import LAYOUTS, pack_path, safe_load_pickle, uses_pack
from .synthetic import is_synthetic


@functools.lru_cache(maxsize=None)
def data_provenance(name: str, root) -> str:
    """``name``, or what stands in for it: synthetic images, the reconstructed CIFAR-10, a pack of either."""
    if uses_pack(name, root):
        with np.load(pack_path(name, root), allow_pickle=False) as f:
            return str(f["source"])
    if is_synthetic(name, root):
        return f"synthetic {name} (official format, not real images)"
    folder = Path(root) / LAYOUTS[name].folder
    meta = safe_load_pickle(folder / LAYOUTS[name].test_files[0])
    if str(meta.get("filenames", ["x"])[0]).startswith("unknown_"):
        return f"reconstructed {name} (labels exact, pixels mostly from JPEG copies)"
    return name
