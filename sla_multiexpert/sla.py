"""Stage-2 sample weights: SLA (seed 003, Eq. 9-12 / 17) and the re-weightings of Table 1.

Every weighting maps one expert's outputs to a per-sample weight on the logit-adjusted CE;
weights are constants (no gradient flows through them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from common.losses import class_weights


def target_cosine(features, classifier_weight, targets):
    """cos(theta_y): cosine between each feature and its own class's weight vector (Eq. 11)."""
    return (F.normalize(features.float(), dim=1) * F.normalize(classifier_weight.float(), dim=1)[targets]).sum(1)


def sla_weights(adjusted_logits, targets, cos_y, cos_star, gamma: float, tau: float):
    """``(1 - p_y) ** gamma * exp(tau * cos_star[y] - tau * cos_y)`` (Eq. 12 / 17), with ``p_y``
    the logit-adjusted probability of the true class (Eq. 9)."""
    return focal_weights(adjusted_logits, targets, gamma) * torch.exp(tau * (cos_star[targets] - cos_y))


class BenchmarkCosines:
    """The per-class benchmark cos(theta_y*) of each expert (Algorithm 1).

    For every expert and class, the benchmark is the cosine of the training sample with the
    largest logit of that class. The list S is built over the whole training set when stage 2
    starts (``rebuild``); during each stage-2 epoch the training batches update a running
    per-class maximum (``observe``), which replaces S at the epoch's end (``end_epoch``).
    """

    def __init__(self, num_experts: int, num_classes: int, device):
        self.shape, self.device = (num_experts, num_classes), device
        self.cos_star = None          # E x C, used for the weights
        self._reset_running()

    def _reset_running(self):
        self.best_logit = torch.full(self.shape, float("-inf"), device=self.device)
        self.best_cos = torch.zeros(self.shape, device=self.device)

    @torch.no_grad()
    def observe(self, logits, cos_y, targets):
        """``logits`` E x N x C (raw), ``cos_y`` E x N; keep each class's largest-logit sample."""
        num_experts, num_classes = self.shape
        own = logits.float().gather(2, targets[None, :, None].expand(num_experts, -1, 1)).squeeze(2)   # E x N
        for k in range(num_experts):
            batch_best = torch.full((num_classes,), float("-inf"), device=self.device).scatter_reduce(
                0, targets, own[k], reduce="amax")
            # cosine of the sample holding its class's largest logit (the larger one on a tie)
            at_max = own[k] == batch_best[targets]
            best_cos = torch.full((num_classes,), float("-inf"), device=self.device).scatter_reduce(
                0, targets, torch.where(at_max, cos_y[k].float(), float("-inf")), reduce="amax")
            better = batch_best > self.best_logit[k]
            self.best_logit[k] = torch.where(better, batch_best, self.best_logit[k])
            self.best_cos[k] = torch.where(better, best_cos, self.best_cos[k])

    def end_epoch(self):
        seen = torch.isfinite(self.best_logit)
        self.cos_star = self.best_cos.clone() if self.cos_star is None else torch.where(seen, self.best_cos, self.cos_star)
        self._reset_running()

    @torch.no_grad()
    def rebuild(self, model, images, labels, transform, batch_size: int = 500):
        """Build S from one pass over the (un-augmented) training set."""
        was_training = model.training
        model.eval()
        self._reset_running()
        labels = torch.as_tensor(labels, device=images.device)
        for start in range(0, len(images), batch_size):
            y = labels[start:start + batch_size]
            logits, feats = model.expert_outputs(transform(images[start:start + batch_size]))
            self.observe(logits, expert_cosines(model, feats, y), y)
        self.cos_star = None
        self.end_epoch()
        model.train(was_training)


def expert_cosines(model, feats, targets):
    """E x N cos(theta_y) of every expert."""
    return torch.stack([target_cosine(f, c.weight, targets) for f, c in zip(feats, model.classifiers)])


def focal_weights(adjusted_logits, targets, gamma: float):
    p_y = F.softmax(adjusted_logits.float(), dim=1).gather(1, targets[:, None]).squeeze(1)
    return (1 - p_y).pow(gamma)


def class_weight_table(counts, scheme: str):
    """Table 1's RW (inverse frequency) and CB (effective number, beta 0.9999) class weights."""
    return class_weights(counts, {"rw": "ins", "cb": "ens"}[scheme])
