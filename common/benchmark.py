"""Training throughput: the project's pipeline against fp32 and against a conventional torchvision one.

    python -m common.benchmark [--data DIR] [--model resnet32] [--images 12406] [--batch-size 128]

On one model and one set of images (CIFAR-10-LT at ratio 100 from ``--data`` / ``$LTREPRO_DATA``
when it is there, else random images of that size) it prints images/s of:

- the project's training step as configured (batched augmentation + forward + backward + SGD,
  in the numerics :mod:`common.precision` chooses here), with the host syncs it makes per step
  (those a GPU would wait for), the same step in fp32, contiguous, and compiled (``--no-compile``
  leaves that out);
- one whole epoch of the project (``common.engine.fit`` over the uint8 images kept as a tensor,
  checkpoint included, then evaluation of the test set) and of a conventional pipeline (a
  ``Dataset`` of PIL images with ``RandomCrop(32, 4)`` + ``RandomHorizontalFlip`` + ``ToTensor`` +
  ``Normalize`` through a ``DataLoader``, fp32, evaluated the same way);

and their ratios. Figures to read, never limits a test checks.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from .cli import ArgumentParser
from .config import TrainConfig
from .data import BatchLoader, build_augment, load_cifar, longtail_counts, longtail_indices, to_tensor_images
from .data.augment import CIFAR10_MEAN, CIFAR10_STD
from .data.cifar import CifarError, default_data_root
from .engine import default_device, fit, make_step, predict
from .models import build_model
from .precision import Numerics, apply_numerics, choose_numerics
from .profiling import HostSyncCounter, seconds_per_call


def benchmark_images(root, n_images: int, n_test: int):
    """(train images, train labels, test images, test labels, what they are): CIFAR-10-LT at
    ratio 100 (LDAM-DRW's selection) and the test set, or random images of the same shape."""
    try:
        x, y, _ = load_cifar("cifar10", root, train=True)
        xt, yt, _ = load_cifar("cifar10", root, train=False)
        idx = longtail_indices(y, longtail_counts(5000, 10, 0.01), 0)
        idx = np.resize(idx, n_images)     # repeated when more images are asked for than the subset holds
        return x[idx], y[idx], xt[:n_test], yt[:n_test], f"CIFAR-10 from {root}, LT ratio 100"
    except CifarError:
        rng = np.random.default_rng(0)
        return (rng.integers(0, 256, (n_images, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n_images),
                rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n_test),
                "random images (no CIFAR-10 found)")


def step_throughput(model_name: str, numerics: Numerics, images, labels, batch_size: int, batches: int
                    ) -> tuple[float, int]:
    """(images/s, host syncs per step) of the project's training step (augmentation included) in
    ``numerics``; the syncs are those a GPU would make (:class:`common.profiling.HostSyncCounter`)."""
    torch.manual_seed(0)
    model = build_model(model_name, 10)
    apply_numerics(model, numerics)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    step = make_step(torch.nn.CrossEntropyLoss(), build_augment("standard"))
    x, y = to_tensor_images(images[:batch_size]), torch.as_tensor(labels[:batch_size])

    def train_step():
        with numerics.autocast(torch.device("cpu")):
            loss = step(model, x, y, None, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    images_per_s = batch_size / seconds_per_call(train_step, torch.device("cpu"), batches, warmup=3)
    with HostSyncCounter() as syncs:
        train_step()
    return images_per_s, syncs.count


def project_epoch(model_name: str, cfg: TrainConfig, images, labels, test_x, test_y) -> tuple[float, float]:
    """(seconds of one epoch of ``fit``, seconds to evaluate the test set), after one warm-up epoch."""
    torch.manual_seed(0)
    model = build_model(model_name, 10)
    loader = BatchLoader(to_tensor_images(images), labels, cfg.batch_size, shuffle=True)
    step = make_step(torch.nn.CrossEntropyLoss(), build_augment("standard"))
    test = to_tensor_images(test_x)
    with tempfile.TemporaryDirectory() as tmp:
        same = {"run_config": {"benchmark": cfg.model_dump(mode="json")}}     # the 2-epoch call resumes the 1-epoch one
        fit(model, loader, cfg.model_copy(update={"epochs": 1}), tmp, step=step, progress=False, **same)   # warm-up
        start = time.perf_counter()
        fit(model, loader, cfg.model_copy(update={"epochs": 2}), tmp, step=step, progress=False, **same)
        train_s = time.perf_counter() - start
    start = time.perf_counter()
    predict(model, test, build_augment("none"), cfg.eval_batch_size, amp=False)
    return train_s, time.perf_counter() - start


class PILDataset(torch.utils.data.Dataset):
    """CIFAR as torchvision serves it: one PIL image per item, transformed one at a time."""

    def __init__(self, images, labels, transform):
        from PIL import Image
        self.images = [Image.fromarray(img) for img in images]
        self.labels, self.transform = labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), int(self.labels[i])


def conventional_epoch(model_name: str, images, labels, test_x, test_y, batch_size: int, workers: int
                       ) -> tuple[float, float]:
    """(seconds of one training epoch, seconds of evaluation) of the conventional fp32 pipeline,
    after one warm-up epoch."""
    from torchvision import transforms as T

    normalize = T.Normalize(CIFAR10_MEAN, CIFAR10_STD)
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
    test_tf = T.Compose([T.ToTensor(), normalize])
    kw = {"num_workers": workers, "persistent_workers": workers > 0}
    train = torch.utils.data.DataLoader(PILDataset(images, labels, train_tf), batch_size, shuffle=True, **kw)
    test = torch.utils.data.DataLoader(PILDataset(test_x, test_y, test_tf), 500, **kw)
    torch.manual_seed(0)
    model = build_model(model_name, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def train_epoch():
        model.train()
        for x, y in train:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    train_epoch()                                          # warm-up (and worker start)
    start = time.perf_counter()
    train_epoch()
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    model.eval()
    with torch.no_grad():
        for x, _ in test:
            F.softmax(model(x), dim=1)
    return train_s, time.perf_counter() - start


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder holding cifar-10-batches-py/ (default: $LTREPRO_DATA or ./data)")
    parser.add_argument("--model", default="resnet32")
    parser.add_argument("--images", type=int, default=12406, help="training images per epoch (default: CIFAR-10-LT ratio 100)")
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=20, help="timed batches of the step comparison")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="leave out the compiled step (compiling takes about a minute on a CPU)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="DataLoader workers of the conventional pipeline")
    args = parser.parse_args(argv)
    device = default_device()
    if device.type != "cpu":
        parser.error("this benchmark compares CPU pipelines; on CUDA use python -m sla_multiexpert.benchmark")
    root = args.data or default_data_root()
    x, y, xt, yt, what = benchmark_images(root, args.images, args.test_images)
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=0.01, milestones=[], weight_decay=5e-4)
    configured = choose_numerics(device, cfg)
    print(f"{args.model}, batch {args.batch_size}, {torch.get_num_threads()} CPU threads, {what}: "
          f"{len(x)} training / {len(xt)} test images")
    print(f"configured numerics here: {configured.describe()}")

    fast, syncs = step_throughput(args.model, configured, x, y, args.batch_size, args.batches)
    slow, _ = step_throughput(args.model, Numerics(bf16=False, channels_last=False), x, y, args.batch_size, args.batches)
    print(f"training step, as configured        {fast:8.0f} images/s, {syncs} host syncs per step")
    print(f"training step, fp32 contiguous      {slow:8.0f} images/s")
    print(f"  ratio                             {fast / slow:8.2f}x")
    if args.compile:
        compiled, compiled_syncs = step_throughput(args.model, replace(configured, compiled=True), x, y,
                                                   args.batch_size, args.batches)
        print(f"training step, as configured, eager     {fast:8.0f} images/s")
        print(f"training step, as configured, compiled  {compiled:8.0f} images/s, {compiled_syncs} host syncs per step "
              f"({compiled / fast:.2f}x; torch.compile of forward_features, compilation not timed)")

    ours_train, ours_eval = project_epoch(args.model, cfg, x, y, xt, yt)
    conv_train, conv_eval = conventional_epoch(args.model, x, y, xt, yt, args.batch_size, args.workers)
    for label, train_s, eval_s in (("project epoch (uint8 tensor, batched augmentation)", ours_train, ours_eval),
                                   (f"conventional epoch (PIL Dataset, DataLoader, {args.workers} workers, fp32)",
                                    conv_train, conv_eval)):
        print(f"{label}\n  train {len(x) / train_s:8.0f} images/s, evaluation {len(xt) / eval_s:8.0f} images/s, "
              f"epoch + evaluation {train_s + eval_s:6.1f} s")
    print(f"  ratio, training only              {conv_train / ours_train:8.2f}x")
    print(f"  ratio, epoch + evaluation         {(conv_train + conv_eval) / (ours_train + ours_eval):8.2f}x")


if __name__ == "__main__":
    main()
