"""Throughput and FLOP counts, for benchmarks and run plans (figures to print, never test limits)."""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# Attention kernels torch's FlopCounterMode has no formula for (torch 2.14: the CPU flash
# kernel that F.scaled_dot_product_attention and nn.MultiheadAttention dispatch to), counted
# with torch's own SDPA formula.
EXTRA_FLOP_FORMULAS = {getattr(torch.ops.aten, name): _sdpa_flops
                       for name in ("_scaled_dot_product_flash_attention_for_cpu",) if hasattr(torch.ops.aten, name)}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], object], device: torch.device, calls: int = 3, warmup: int = 1) -> float:
    """Mean wall time of ``fn()`` after ``warmup`` untimed calls, GPU work included."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / calls


def forward_flops(model: torch.nn.Module, size: int, channels: int = 3, forward=None) -> int:
    """FLOPs of one forward pass of one ``size`` x ``size`` image (matmuls and convolutions,
    multiply-add = 2 FLOPs, as torch's FlopCounterMode counts), through ``forward(model, x)``
    (default ``model(x)``). A training step costs about three times this (forward, and backward
    for activations and for weights)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:  # with grad enabled: under no_grad nn.MultiheadAttention takes a fused path the counter misses
        with FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
            x = torch.zeros(1, channels, size, size, device=device)
            forward(model, x) if forward else model(x)
    finally:
        for m, training in modes.items():
            m.training = training
    return counter.get_total_flops()
