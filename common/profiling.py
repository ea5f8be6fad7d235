"""Throughput and FLOP counts, for benchmarks and run plans (figures to print, never test limits)."""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# Attention kernels torch's FlopCounterMode has no formula for (torch 2.14: the CPU flash
# kernel that F.scaled_dot_product_attention and nn.MultiheadAttention dispatch to), counted
# with torch's own SDPA formula.
EXTRA_FLOP_FORMULAS = {getattr(torch.ops.aten, name): _sdpa_flops
                       for name in ("_scaled_dot_product_flash_attention_for_cpu",) if hasattr(torch.ops.aten, name)}


aten = torch.ops.aten
# ops after which the host waits for the device: a value read back (.item(), bool(t), .tolist()),
# an output whose size depends on values, a tensor made from host data (a host-to-device copy)
_SYNC_OPS = {aten._local_scalar_dense, aten.nonzero, aten.masked_select, aten._unique2, aten.unique_dim,
             aten.unique_consecutive, aten.lift_fresh, aten.lift_fresh_copy}


def _bool_mask(args) -> bool:
    """A boolean mask used as an index: the kernel turns it into indices with ``nonzero``."""
    indices = args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices)


class HostSyncCounter(TorchDispatchMode):
    """Counts the host syncs a GPU would make while it is active (``with HostSyncCounter() as c: ...;
    c.count``). Ops are counted on any device, so a CPU run shows what the same code waits for on a GPU."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func.overloadpacket
        if packet in _SYNC_OPS or func == aten.repeat_interleave.Tensor or (
                packet in (aten.index, aten.index_put, aten.index_put_) and _bool_mask(args)):
            self.count += 1
        return func(*args, **(kwargs or {}))


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
