"""How a run computes: bf16 (or fp16) autocast, channels_last and ``torch.compile``.

bf16 autocast is used where the hardware runs it natively: CUDA, and CPUs with AMX-BF16 or
AVX-512-BF16 (on such a Xeon, with channels_last, it makes a ResNet-32 training step about twice
as fast as fp32). Elsewhere a run stays in fp32 and says so once. channels_last is a memory
layout, not a precision: it is used as configured on every device (in fp32 on an AVX2-only EPYC
it still made an EfficientNet-Lite0 step 1.3x faster, 2026-12-02).
The classifier head (:func:`common.models.fp32_head`), the losses, the metrics and the
augmentation stay in fp32. What a run used is kept in its checkpoint, so a resumed run goes on
in the precision it started in, and in its record.
"""
from __future__ import annotations

import functools
import sys
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn


@functools.cache
def cpu_runs_bf16_natively() -> bool:
    """AMX tiles or AVX-512-BF16, by PyTorch's own CPU capability checks."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and cpu_runs_bf16_natively()


@dataclass(frozen=True)
class Numerics:
    """What a run computes in; ``record()`` is what its record and checkpoint store."""
    bf16: bool
    channels_last: bool
    compiled: bool = False
    fp16: bool = False          # fp16 autocast with a GradScaler: GPUs without native bf16

    def record(self) -> dict:
        """As a dict; ``fp16`` only where used, so records from before it existed read the same."""
        return {k: v for k, v in asdict(self).items() if k != "fp16" or v}

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.bf16 else torch.float16 if self.fp16 else None

    def autocast(self, device: torch.device):
        """The training step's autocast (a no-op in fp32)."""
        dtype = self.autocast_dtype
        return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler:
        """Loss scaling for fp16 (a pass-through otherwise)."""
        return torch.amp.GradScaler(device.type, enabled=self.fp16)

    def describe(self) -> str:
        return ", ".join(("bf16 autocast" if self.bf16 else "fp16 autocast + loss scaling" if self.fp16 else "fp32",
                          "channels_last" if self.channels_last else "contiguous",
                          "torch.compile" if self.compiled else "eager"))


_said = set()


def choose_numerics(device: torch.device, cfg) -> Numerics:
    """``cfg.amp``: bf16 where ``device`` runs it natively, fp16 on a GPU that does not;
    ``cfg.channels_last`` and ``cfg.compile`` as asked."""
    native = native_bf16(device)
    fp16 = cfg.amp and not native and device.type == "cuda"
    if not native and not fp16 and cfg.amp and device.type not in _said:
        _said.add(device.type)
        print(f"note: this {device.type} has no native bf16 (AMX-BF16 / AVX-512-BF16 on a CPU): training in fp32",
              file=sys.stderr, flush=True)
    return Numerics(bf16=cfg.amp and native, channels_last=cfg.channels_last, compiled=cfg.compile, fp16=fp16)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast when ``enabled`` and ``device`` runs bf16 natively; a no-op otherwise."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and native_bf16(device))


COMPILE_BACKEND = "inductor"     # tests use "eager": the same graphs, without a C++ compiler


def compile_model(model: nn.Module) -> None:
    """``torch.compile`` of the functions a training step calls, whole: the model's
    ``compiled_functions`` (default ``forward_features``; a multi-expert model's ``expert_outputs``),
    replaced on the instance so the state dict keeps its keys. Each is one graph per input shape
    and mode (a handful in a run); running out of recompiles raises instead of going on eager."""
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    for name in getattr(model, "compiled_functions", ("forward_features",)):
        setattr(model, name, torch.compile(getattr(model, name), backend=COMPILE_BACKEND))


def apply_numerics(model: nn.Module, numerics: Numerics) -> None:
    """channels_last weights (inputs follow through :func:`match_memory_format`) and compilation
    (:func:`compile_model`)."""
    if numerics.channels_last:
        model.to(memory_format=torch.channels_last)
        model._channels_last = True
    if numerics.compiled and not getattr(model, "_compiled", False):
        compile_model(model)
        model._compiled = True


def match_memory_format(x, model):
    """``x`` in channels_last when :func:`apply_numerics` put the model there."""
    return x.contiguous(memory_format=torch.channels_last) if getattr(model, "_channels_last", False) else x
