"""The two-stage multi-expert trainer (seed 003, Algorithm 1, Eq. 13-18).

Stage 1 (epoch < switch): each expert k sees its own augmentation of the batch (weak /
medium / strong), mixed up with one Beta(alpha, alpha) coefficient and one partner
permutation shared by the three views (Eq. 13-14); loss = sum over experts of the
logit-adjusted CE (Eq. 16, w = 1; Eq. 18, all epsilon_k = 1).
Stage 2 (epoch >= switch): same views without mixup; each expert's LA-CE is weighted per
sample by the stage-2 weighting (SLA for the method; RW / CB / FL / none for the baselines
and ablations), averaged over the batch, summed over experts.
"""
from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeFloat, NonNegativeInt, model_validator

from common.config import Section, one_of
from common.data import AUGMENTATIONS, mixup, mixup_loss
from common.experiment import RunContext
from common.precision import match_memory_format
from common.methods import register_method

from . import model as _model  # noqa: F401  (registers multi_expert_resnet32)
from .sla import BenchmarkCosines, class_weight_table, expert_cosines, focal_weights, sla_weights

WEIGHTINGS = ("sla", "rw", "cb", "fl", "none")


class SLAMethod(Section):
    """The ``method`` section of seed 003's runs."""
    name: Annotated[str, one_of(("sla_multiexpert",), "method")]
    augments: list[Annotated[str, one_of(AUGMENTATIONS, "augmentation")]] = ["weak", "medium", "strong"]  # one per expert
    mixup_alpha: NonNegativeFloat = 0.2         # stage 1; 0 turns mixup off
    switch_epoch: NonNegativeInt | None = None  # stage 2 from this epoch ...
    switch_fraction: float | None = Field(None, gt=0, le=1)   # ... or from this fraction of training (wins)
    weighting: Annotated[str, one_of(WEIGHTINGS, "stage-2 weighting")] = "sla"
    gamma: float = 1.0                          # SLA / focal exponent
    tau: float = 1.0                            # SLA temperature

    @model_validator(mode="after")
    def _switch_given(self):
        if self.switch_epoch is None and self.switch_fraction is None:
            raise ValueError("set switch_epoch or switch_fraction (when stage 2 starts)")
        return self


@register_method("sla_multiexpert", SLAMethod)
def build_step(ctx: RunContext):
    method = ctx.cfg.method
    model, counts = ctx.model, ctx.data["train_counts"]
    weighting = method.weighting
    if len(method.augments) != model.num_experts:
        raise ValueError(f"method.augments names {len(method.augments)} views for {model.num_experts} experts")
    switch = (int(method.switch_fraction * ctx.train_cfg.epochs) if method.switch_fraction
              else method.switch_epoch)             # Table 1 switches at 9/10 of training
    alpha, gamma, tau = method.mixup_alpha, method.gamma, method.tau
    augments = [ctx.augment(name) for name in method.augments]
    offset = ctx.loss_fn.offset()                      # tau_LA * log(pi_train / pi_test), Eq. 7
    device = offset.device
    tracker = BenchmarkCosines(model.num_experts, len(counts), device)
    table = class_weight_table(counts, weighting).to(device) if weighting in ("rw", "cb") else None

    def stage2_weights(adjusted, logits, feats, labels):
        if weighting == "sla":
            cos_y = expert_cosines(model, feats, labels)
            tracker.observe(logits, cos_y, labels)
            return torch.stack([sla_weights(adjusted[k], labels, cos_y[k], tracker.cos_star[k], gamma, tau)
                                for k in range(model.num_experts)])
        if weighting == "fl":
            return torch.stack([focal_weights(a, labels, gamma) for a in adjusted])
        if weighting in ("rw", "cb"):
            return table[labels].expand(model.num_experts, -1)
        return None

    def step(model, images, labels, indices, epoch):
        views = [match_memory_format(augment(images), model) for augment in augments]
        if epoch < switch and alpha > 0:
            views, y_a, y_b, lam = mixup(views, labels, alpha)
            logits, _ = model.expert_outputs(views)
            return sum(mixup_loss(F.cross_entropy, a, y_a, y_b, lam) for a in logits.float() + offset)
        logits, feats = model.expert_outputs(views)
        adjusted = logits.float() + offset
        weights = stage2_weights(adjusted, logits, feats, labels) if epoch >= switch else None
        if weights is None:
            return sum(F.cross_entropy(a, labels) for a in adjusted)
        weights = weights.detach()
        return sum((w * F.cross_entropy(a, labels, reduction="none")).mean() for a, w in zip(adjusted, weights))

    def on_epoch_start(epoch):
        if weighting != "sla" or epoch < switch:
            return
        if tracker.cos_star is None:                   # stage 2 starts (or a resumed run)
            tracker.rebuild(model, ctx.loader.images, ctx.loader.labels, ctx.test_transform)
        else:
            tracker.end_epoch()                        # S_t -> S_t+1 from last epoch's batches

    step.tracker = tracker
    return step, (on_epoch_start,)
