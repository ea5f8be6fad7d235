import torch
import torch.nn as nn

from common.profiling import forward_flops, seconds_per_call


def test_forward_flops_counts_multiply_adds_twice():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(4 * 8 * 8, 2)).train()
    conv = 2 * (3 * 3 * 3) * 4 * (8 * 8)
    linear = 2 * (4 * 8 * 8) * 2
    assert forward_flops(model, 8) == conv + linear
    assert model.training  # mode restored


def test_seconds_per_call_counts_only_timed_calls():
    calls = []
    seconds = seconds_per_call(lambda: calls.append(1), torch.device("cpu"), calls=4, warmup=2)
    assert len(calls) == 6 and seconds >= 0
