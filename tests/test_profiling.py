import torch
import torch.nn as nn

from common import profiling
from common.profiling import forward_flops, seconds_per_call


def test_forward_flops_counts_multiply_adds_twice():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 2)).train()
    model[1].eval()                      # e.g. a frozen backbone's BatchNorm
    conv = 2 * (3 * 3 * 3) * 4 * (8 * 8)
    linear = 2 * (4 * 8 * 8) * 2
    assert forward_flops(model, 8) == conv + linear
    assert model.training and not model[1].training   # every module's own mode restored


class TokenAttention(nn.Module):
    """Each pixel a token of ``channels`` features, one two-head attention layer over them."""

    def __init__(self, channels):
        super().__init__()
        self.attn = nn.MultiheadAttention(channels, 2, batch_first=True)

    def forward(self, x):
        tokens = x.flatten(2).transpose(1, 2)
        return self.attn(tokens, tokens, tokens, need_weights=False)[0]   # as torchvision's ViT calls it


def test_forward_flops_counts_attention():
    d, n = 4, 2 * 2                      # 4 channels, 2 x 2 pixels = 4 tokens
    projections = 2 * n * d * (3 * d) + 2 * n * d * d
    scores_and_mix = 2 * (2 * n * n * d)
    assert forward_flops(TokenAttention(d), 2, channels=d) == projections + scores_and_mix


class PlainAttention(nn.Module):
    """Single-head attention through F.scaled_dot_product_attention, as timm's ViT blocks call it."""

    def forward(self, x):
        tokens = x.flatten(2).transpose(1, 2)[:, None]          # batch, 1 head, tokens, channels
        return torch.nn.functional.scaled_dot_product_attention(tokens, tokens, tokens)


def test_forward_flops_counts_scaled_dot_product_attention():
    d, n = 8, 3 * 3
    assert forward_flops(PlainAttention(), 3, channels=d) == 2 * (2 * n * n * d)   # q k^T and p v


def test_seconds_per_call_times_only_the_timed_calls(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(profiling.time, "perf_counter", lambda: clock[0])

    def call():                          # each call takes 1 s, a warm-up call 10 s
        clock[0] += 10.0 if len(calls) < 2 else 1.0
        calls.append(1)

    calls = []
    assert seconds_per_call(call, torch.device("cpu"), calls=4, warmup=2) == 1.0
    assert len(calls) == 6
