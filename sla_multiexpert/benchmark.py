"""Training throughput: multi-expert ResNet-32 with its three augmentations vs plain ResNet-32.

    python -m sla_multiexpert.benchmark [--batches 20] [--batch-size 128] [--device cuda] [--compile]

Random uint8 CIFAR-sized batches; times forward + backward + SGD step including the batched
augmentation, after warm-up batches. Prints images/s per configuration and the time split
between augmentation and the model; with ``--compile`` also each model compiled as a run with
``train.compile`` is (compilation not timed: it is done in the warm-up batches).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

from common.cli import ArgumentParser
from common.data import CIFAR10_MEAN, CIFAR10_STD, build_augment
from common.engine import TrainConfig, autocast, default_device, match_memory_format, set_up_numerics
from common.models import build_model
from common.profiling import seconds_per_call

from . import model as _model  # noqa: F401


def measure(name, device, batch_size, batches, warmup=3, compile=False):
    """(training images/s, share of the step spent augmenting) for one model."""
    torch.manual_seed(0)
    experts = name == "multi_expert_resnet32"
    model = build_model(name, 100).to(device)
    set_up_numerics(model, TrainConfig(compile=compile))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    augs = [build_augment(a, CIFAR10_MEAN, CIFAR10_STD) for a in (("weak", "medium", "strong") if experts else ("weak",))]
    images = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 100, (batch_size,), device=device)

    def augment():
        return [match_memory_format(a(images), model) for a in augs]

    def train_step():
        views = augment()
        with autocast(device, True):
            if experts:
                logits, _ = model.expert_outputs(views)
                loss = sum(F.cross_entropy(l.float(), labels) for l in logits)
            else:
                loss = F.cross_entropy(model(views[0]).float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step_s = seconds_per_call(train_step, device, batches, warmup)
    return batch_size / step_s, seconds_per_call(augment, device, batches, warmup) / step_s


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default=None)
    parser.add_argument("--compile", action="store_true",
                        help="also time each model under torch.compile (about a minute of compiling each on a CPU)")
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else default_device()
    label = torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {label}, batch {args.batch_size}, {args.batches} timed batches")
    for name, what in (("resnet32", "plain ResNet-32, crop + flip"),
                       ("multi_expert_resnet32", "multi-expert ResNet-32, weak + medium + strong views")):
        eager, aug_share = measure(name, device, args.batch_size, args.batches)
        print(f"{what:55s} {eager:9.0f} images/s  (augmentation {100 * aug_share:.1f}% of the step)", flush=True)
        if args.compile:
            compiled, _ = measure(name, device, args.batch_size, args.batches, compile=True)
            print(f"{'  the same, torch.compile':55s} {compiled:9.0f} images/s  ({compiled / eager:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
