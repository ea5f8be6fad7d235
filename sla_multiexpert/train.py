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

import torch
import torch.nn.functional as F

from common.data import mixup, mixup_loss
from common.experiment import RunContext

from . import model as _model  # noqa: F401  (registers multi_expert_resnet32)
from .sla import BenchmarkCosines, class_weight_table, expert_cosines, focal_weights, sla_weights

WEIGHTINGS = ("sla", "rw", "cb", "fl", "none")


def build_step(ctx: RunContext):
    method = ctx.cfg["method"]
    model, counts = ctx.model, ctx.data["train_counts"]
    weighting = method.get("weighting", "sla")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown stage-2 weighting {weighting!r}; expected one of {WEIGHTINGS}")
    switch = (int(method["switch_fraction"] * ctx.train_cfg.epochs) if method.get("switch_fraction")
              else method["switch_epoch"])             # Table 1 switches at 9/10 of training
    alpha = method.get("mixup_alpha", 0.2)
    gamma, tau = method.get("gamma", 1.0), method.get("tau", 1.0)
    augments = [ctx.augment(name) for name in method.get("augments", ["weak", "medium", "strong"])]
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
        views = [augment(images) for augment in augments]
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
