"""Per-class weights from class counts: ``class_weights(counts, scheme, beta)``."""
from __future__ import annotations

import torch
from timm.loss import compute_class_weights

# scheme -> (timm method, power)
SCHEMES = {
    "ins": ("inv_freq", 1.0),      # inverse number of samples, 1 / n_c
    "isns": ("inv_freq", 0.5),     # inverse square root number of samples, 1 / sqrt(n_c)
    "ens": ("effective_num", 1.0),  # inverse effective number (1 - beta) / (1 - beta ** n_c)
}


def class_weights(counts, scheme: str, beta: float = 0.9999) -> torch.Tensor:
    """Class weights normalised to sum to the number of classes (mean 1).

    ``ins`` / ``isns`` / ``ens`` are seed 002's INS, ISNS and ENS; ``ens`` is Cui et al.
    2019's class-balanced weight (beta 0.9999, their CIFAR setting and LDAM-DRW's DRW).
    Normalising to sum C is what both Cui et al.'s and LDAM-DRW's code do; timm's
    ``compute_class_weights`` computes the same mean-1 weights.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown weight scheme {scheme!r}; expected one of {sorted(SCHEMES)}")
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if (counts <= 0).any():
        raise ValueError("every class needs at least one training sample to be weighted")
    method, power = SCHEMES[scheme]
    if method == "effective_num" and beta == 0:  # every effective number is 1: uniform weights
        return torch.ones(len(counts))
    _, weights = compute_class_weights(counts, int(counts.sum()), method=method, power=power, beta=beta)
    return weights.float()
