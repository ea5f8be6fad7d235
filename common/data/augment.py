"""Batched augmentation on image tensors ``N x 3 x H x W``, on whatever device they live.

Every random choice is drawn per sample, and applied to the whole batch with tensor ops,
so the same code runs on CPU and, without a data loader, on the GPU.

Pipelines (``build_augment``) take a uint8 batch and return a normalised float batch:
``none`` (test), ``standard``/``weak`` (crop 32 pad 4 + flip), ``medium``
(RandomResizedCrop + flip + SimCLR colour), ``strong`` (crop + flip + AutoAugment CIFAR
policy), each optionally followed by a resize (e.g. to 224 for ImageNet models).
"""
from __future__ import annotations

import contextlib
import functools
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
# LDAM-DRW's CIFAR normalisation (its train.py uses these for both CIFAR-10 and -100);
# the thesis (seed 001, A.2) uses the same numbers.
LDAM_MEAN, LDAM_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
INCEPTION_MEAN, INCEPTION_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)   # TF EfficientNet-Lite: (x - 127) / 128
# name -> (mean, std): the ``train`` section's ``normalize`` (default: the dataset's own)
NORMALISATIONS = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
    "ldam": (LDAM_MEAN, LDAM_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "inception": (INCEPTION_MEAN, INCEPTION_STD),
}


def _uniform(n, low, high, x):
    return torch.empty(n, device=x.device).uniform_(low, high)


def _coin(n, p, x):
    return torch.rand(n, device=x.device) < p


def _per_sample(v):
    return v.view(-1, 1, 1, 1)


def random_crop(x: torch.Tensor, size: int = 32, padding: int = 4) -> torch.Tensor:
    """Zero-pad by ``padding`` and take a random ``size`` x ``size`` window per sample."""
    n = x.shape[0]
    padded = F.pad(x, (padding,) * 4)
    top = torch.randint(0, padded.shape[-2] - size + 1, (n,), device=x.device)
    left = torch.randint(0, padded.shape[-1] - size + 1, (n,), device=x.device)
    ar = torch.arange(size, device=x.device)
    rows = (top[:, None] + ar)[:, None, :, None]        # n 1 size 1
    cols = (left[:, None] + ar)[:, None, None, :]       # n 1 1 size
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_flip(x: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    return torch.where(_per_sample(_coin(x.shape[0], p, x)), x.flip(-1), x)


def to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def random_resized_crop(x: torch.Tensor, size: int, scale=(0.2, 1.0),
                        ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Per-sample RandomResizedCrop by an affine grid (bilinear); returns float in [0, 1].

    Area fraction and log aspect ratio are drawn as in torchvision; instead of its ten
    rejection tries, a box that does not fit is clamped to the image.
    """
    x = to_float(x)
    n = x.shape[0]
    area = _uniform(n, *scale, x)
    log_r = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), x)
    aspect = torch.exp(log_r)
    w = torch.sqrt(area * aspect).clamp(max=1.0)   # fractions of the image side
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (torch.rand(n, device=x.device) * (1 - w) + w / 2) * 2 - 1
    cy = (torch.rand(n, device=x.device) * (1 - h) + h / 2) * 2 - 1
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta, (n, x.shape[1], size, size), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _grayscale(x):
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)


def _blend(a, b, factor):
    return (factor * a + (1 - factor) * b).clamp_(0, 1)


def _rgb_to_hsv(x):
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(maxc == r, (g - b) / safe % 6,
                    torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    h = torch.where(delta > 0, h, torch.zeros_like(h))
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)),
                    torch.zeros_like(maxc))
    return torch.stack((h, s, maxc), 1)


def _hsv_to_rgb(x):
    h, s, v = x.unbind(1)
    k = torch.stack([(n + h * 6) % 6 for n in (5.0, 3.0, 1.0)], 1)
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def color_jitter(x: torch.Tensor, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                 p: float = 0.8) -> torch.Tensor:
    """Per-sample ColorJitter (applied with probability ``p``), fixed order b, c, s, h."""
    n = x.shape[0]
    apply = _per_sample(_coin(n, p, x))
    out = x * _per_sample(_uniform(n, 1 - brightness, 1 + brightness, x))
    out = out.clamp(0, 1)
    mean = _grayscale(out).mean(dim=(1, 2, 3), keepdim=True)
    out = _blend(out, mean, _per_sample(_uniform(n, 1 - contrast, 1 + contrast, x)))
    out = _blend(out, _grayscale(out), _per_sample(_uniform(n, 1 - saturation, 1 + saturation, x)))
    hsv = _rgb_to_hsv(out)
    hsv[:, 0] = (hsv[:, 0] + _uniform(n, -hue, hue, x).view(-1, 1, 1)) % 1.0
    out = _hsv_to_rgb(hsv)
    return torch.where(apply, out, x)


def random_grayscale(x: torch.Tensor, p: float = 0.2) -> torch.Tensor:
    return torch.where(_per_sample(_coin(x.shape[0], p, x)), _grayscale(x), x)


def gaussian_blur(x: torch.Tensor, kernel_size: int = 3, sigma=(0.1, 2.0), p: float = 0.5) -> torch.Tensor:
    """Per-sample Gaussian blur, sigma ~ U(sigma), as one grouped (separable) convolution."""
    n, c, h, w = x.shape
    s = _uniform(n, *sigma, x)
    half = kernel_size // 2
    taps = torch.arange(-half, half + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-taps[None] ** 2 / (2 * s[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)   # (n*c) k
    flat = F.pad(x.reshape(1, n * c, h, w), (half,) * 4, mode="reflect")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * c)
    return torch.where(_per_sample(_coin(n, p, x)), flat.view(n, c, h, w), x)


def simclr_color(x: torch.Tensor, blur: bool = True) -> torch.Tensor:
    """SimCLR's colour distortion (Chen et al. 2020): jitter(0.4, 0.4, 0.4, 0.1) p=0.8,
    grayscale p=0.2, Gaussian blur p=0.5 with a kernel of ~10% of the image side."""
    x = random_grayscale(color_jitter(to_float(x)))
    if blur:
        x = gaussian_blur(x, kernel_size=max(3, int(0.1 * x.shape[-1]) // 2 * 2 + 1))
    return x


_GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


@functools.cache
def _cifar_policy(height: int, width: int) -> tuple:
    """torchvision's CIFAR-10 AutoAugment policy as arrays: per sub-policy and slot its op name,
    probability, magnitude and whether the magnitude's sign is drawn."""
    from torchvision.transforms import autoaugment as aa

    policy = aa.AutoAugment(aa.AutoAugmentPolicy.CIFAR10)
    space = policy._augmentation_space(10, (height, width))
    names, probs, mags, signed = [], [], [], []
    for sub_policy in policy.policies:
        for name, prob, bin_ in sub_policy:
            magnitudes, is_signed = space[name]
            magnitude = float(magnitudes[bin_]) if bin_ is not None else 0.0
            names.append(name), probs.append(prob), mags.append(magnitude)
            signed.append(bool(is_signed and magnitude != 0))
    shape = (len(policy.policies), 2)
    return (np.array(names).reshape(shape), np.array(probs).reshape(shape), np.array(mags).reshape(shape),
            np.array(signed).reshape(shape))


@functools.cache
def _source_maps(height: int, width: int) -> tuple[dict, torch.Tensor]:
    """Every geometric op of the policy as a map output pixel -> 1 + source pixel (0: the zero fill),
    made by torchvision's own op (nearest) on an image of pixel numbers: ``{(name, magnitude): row}``
    and the rows (CPU; moved to a device once, by :func:`_device_maps`)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import autoaugment as aa

    names, _, mags, signed = _cifar_policy(height, width)
    numbers = torch.arange(1, height * width + 1, dtype=torch.float32, device="cpu").view(1, 1, height, width)
    keys = sorted({(n, m * s) for n, m, sg in zip(names.flat, mags.flat, signed.flat) if n in _GEOMETRIC
                   for s in ((1, -1) if sg else (1,))})
    rows = [aa._apply_op(numbers, name, magnitude, InterpolationMode.NEAREST, None).round().long().flatten()
            for name, magnitude in keys]
    return {key: i for i, key in enumerate(keys)}, torch.stack(rows)


_maps_on: dict = {}


def _device_maps(height: int, width: int, device: torch.device) -> tuple[dict, torch.Tensor]:
    key = (height, width, str(device))
    if key not in _maps_on:                            # one host-to-device copy per device, ever
        rows, maps = _source_maps(height, width)
        _maps_on[key] = (rows, maps.to(device))
    return _maps_on[key]


def _remap(x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Pixel ``i`` of every image from pixel ``source[i] - 1`` (0: zero)."""
    flat = F.pad(x.flatten(2), (1, 0))
    return flat.gather(2, source.expand(*flat.shape[:2], -1)).view_as(x)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """torchvision's ``equalize`` of a uint8 batch, every image and channel at once (torchvision
    loops over images and branches on each channel's values)."""
    flat = x.flatten(2).long()
    hist = torch.zeros(*flat.shape[:2], 256, dtype=torch.long, device=x.device).scatter_add_(
        2, flat, torch.ones_like(flat))
    last = hist.gather(2, flat.amax(2, keepdim=True))         # the count of the largest value: the last bin
    step = (flat.shape[2] - last) // 255
    lut = (hist.cumsum(2) + step // 2) // step.clamp(min=1)
    lut = F.pad(lut, (1, 0))[..., :-1].clamp(0, 255)
    return torch.where(step == 0, flat, lut.gather(2, flat)).to(torch.uint8).view_as(x)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """torchvision's ``autocontrast`` of a uint8 batch, without its boolean-mask assignment."""
    low = x.amin((-2, -1), keepdim=True).float()
    scale = 255.0 / (x.amax((-2, -1), keepdim=True).float() - low)
    flat = ~torch.isfinite(scale)
    low, scale = torch.where(flat, 0.0, low), torch.where(flat, 1.0, scale)
    return ((x - low) * scale).clamp(0, 255).to(x.dtype)


def sharpness(x: torch.Tensor, factor: float) -> torch.Tensor:
    """torchvision's ``adjust_sharpness`` of a uint8 batch, its kernel made on the device (torchvision
    writes the centre tap from a host scalar, a copy per call)."""
    kernel = F.pad(torch.full((1, 1), 5.0, device=x.device), (1, 1, 1, 1), value=1.0)
    kernel = (kernel / kernel.sum()).expand(x.shape[-3], 1, 3, 3)
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = F.conv2d(x.float(), kernel, groups=x.shape[-3]).round().to(x.dtype)
    return (factor * x + (1.0 - factor) * degenerate).clamp(0, 255).to(x.dtype)


# torchvision's ops that wait for the device (or loop over images), batched: name -> (batch, magnitude) -> batch
_BATCHED_OPS = {"Equalize": lambda x, m: equalize(x), "AutoContrast": lambda x, m: autocontrast(x),
                "Sharpness": lambda x, m: sharpness(x, 1.0 + m)}


def _apply(x: torch.Tensor, name: str, magnitude: float) -> torch.Tensor:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import autoaugment as aa

    if name in _GEOMETRIC:
        rows, maps = _device_maps(*x.shape[-2:], x.device)
        return _remap(x, maps[rows[(name, magnitude)]])
    if name in _BATCHED_OPS:
        return _BATCHED_OPS[name](x, magnitude)
    return aa._apply_op(x, name, magnitude, InterpolationMode.NEAREST, None)


def _groups(n: int, names, probs, mags, signed) -> tuple[np.ndarray, list]:
    """Draw every sample's sub-policy, op coins and signs on the host (numpy), and group the
    samples by what is applied to them: (sample indices in group order, [(start, stop, name, magnitude)]
    per slot in order)."""
    choice = np.random.randint(len(names), size=n)
    coins, negate = np.random.rand(2, n), np.random.rand(2, n) < 0.5
    order, groups, start = [], [], 0
    for slot in range(2):
        applied = np.flatnonzero(coins[slot] <= probs[choice, slot])
        sub, neg = choice[applied], negate[slot, applied] & signed[choice[applied], slot]
        key = sub * 2 + neg
        sort = np.argsort(key, kind="stable")
        keys, first, counts = np.unique(key[sort], return_index=True, return_counts=True)
        order.append(applied[sort])
        for k, f, c in zip(keys, first, counts):
            magnitude = mags[k // 2, slot] * (-1 if k % 2 else 1)
            groups.append((start + f, start + f + c, names[k // 2, slot], float(magnitude)))
        start += len(applied)
    return np.concatenate(order), groups


def autoaugment_cifar(x: torch.Tensor) -> torch.Tensor:
    """AutoAugment with the CIFAR-10 policy (Cubuk et al. 2019) on a uint8 batch (a float batch
    in [0, 1] is first rounded to 8 bits, the images torchvision's ops are defined on).

    Each sample draws its own sub-policy, op coins and magnitude signs, as torchvision's
    ``AutoAugment`` does per image, but on the host (numpy): no device value decides what runs.
    Samples that share an (op, magnitude, sign) are transformed together, their indices sent to
    the device in one copy, so a batch costs one transfer and a few dozen batched op calls.
    """
    if x.dtype != torch.uint8:
        x = x.mul(255).round_().clamp_(0, 255).to(torch.uint8)
    order, groups = _groups(x.shape[0], *_cifar_policy(*x.shape[-2:]))
    order = torch.from_numpy(order).to(x.device, non_blocking=True)
    out = x.clone()
    for start, stop, name, magnitude in groups:
        idx = order[start:stop]
        out[idx] = _apply(out[idx], name, magnitude)
    return out


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    x = to_float(x)
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < x.shape[-1])


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    mean = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


class Normalize:
    """``normalize`` with the mean and std copied to each device once, not on every call."""

    def __init__(self, mean, std):
        self.mean, self.std, self.on = mean, std, {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.device, x.dtype)
        if key not in self.on:
            self.on[key] = tuple(torch.tensor(v, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
                                 for v in (self.mean, self.std))
        mean, std = self.on[key]
        return (x - mean) / std


def mixup(x, y: torch.Tensor, alpha: float):
    """Mixup (Zhang et al. 2018): ``lam ~ Beta(alpha, alpha)``, one ``lam`` per batch, mixed with
    a random permutation of the batch. ``x`` may be a list of views of the same batch, all mixed
    with the same ``lam`` and permutation. Returns ``(mixed_x, y, y[perm], lam)``."""
    lam = float(np.random.beta(alpha, alpha)) if alpha > 0 else 1.0     # drawn on the host: nothing to wait for
    perm = torch.randperm(len(y), device=y.device)
    mixed = [lam * v + (1 - lam) * v[perm] for v in x] if isinstance(x, (list, tuple)) else lam * x + (1 - lam) * x[perm]
    return mixed, y, y[perm], lam


def mixup_loss(loss_fn, logits, y_a, y_b, lam: float):
    return lam * loss_fn(logits, y_a) + (1 - lam) * loss_fn(logits, y_b)


# name -> uint8 or float-in-[0, 1] batch in, float batch in [0, 1] out
_SPATIAL: dict[str, Callable] = {
    "none": to_float,
    "standard": lambda x: to_float(random_flip(random_crop(x, x.shape[-1], 4))),
    "medium": lambda x: simclr_color(random_flip(random_resized_crop(x, x.shape[-1], scale=(0.2, 1.0)))),
    "strong": lambda x: to_float(autoaugment_cifar(random_flip(random_crop(x, x.shape[-1], 4)))),
}
_SPATIAL["weak"] = _SPATIAL["standard"]
AUGMENTATIONS = tuple(_SPATIAL)


def build_augment(name: str = "standard", mean=CIFAR10_MEAN, std=CIFAR10_STD,
                  size: int | None = None, resize_first: bool = False) -> Callable:
    """uint8 ``N x 3 x 32 x 32`` batch -> normalised float batch.

    ``size`` resizes after augmenting (or before it with ``resize_first``, as the thesis's
    ``Resize(224)`` then ``RandomCrop(224, padding=4)`` does)."""
    if name not in _SPATIAL:
        raise ValueError(f"unknown augmentation {name!r}; expected one of {AUGMENTATIONS}")
    spatial, norm = _SPATIAL[name], Normalize(mean, std)

    def augment(x: torch.Tensor) -> torch.Tensor:
        full_precision = (torch.autocast(device_type=x.device.type, enabled=False)
                          if torch.amp.is_autocast_available(x.device.type) else contextlib.nullcontext())
        with full_precision:  # augment in full precision
            if size is not None and resize_first:  # float, like the test images (and the thesis's tensors)
                x = spatial(resize(x, size))
            else:
                x = spatial(x)
                if size is not None:
                    x = resize(x, size)
            return norm(to_float(x))

    return augment
