"""CUDA code paths exercised without a GPU (fake CUDA tensors, see ``fake_cuda`` in conftest.py):
each test names the defect a GPU would hit that it guards against."""
import copy
import functools
import json
from types import SimpleNamespace

import pytest
import torch

from common.data import BatchLoader
from common.experiment import default_step
from common.losses import build_loss
from common.models import build_model
from common.precision import Numerics

COUNTS = [50, 20, 10, 5, 2]


def test_classifier_only_stage_on_cached_cuda_features(fake_cuda):
    """Seed 000's stage-2 rows: the loader over cached features gets labels already on the GPU."""
    with fake_cuda():
        model = build_model("resnet32", len(COUNTS))
        images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
        ctx = SimpleNamespace(
            cfg=SimpleNamespace(train=SimpleNamespace(classifier_only=True, augment="none", mixup_alpha=0.0)),
            loss_fn=build_loss("ce", COUNTS), numerics=Numerics(bf16=True, channels_last=True),
            loader=BatchLoader(images, torch.arange(8) % len(COUNTS), 4, shuffle=True),
            frozen_features=lambda x, bf16: model.forward_features(x.float()))
        step, _ = default_step(ctx)
        for features, labels, indices in ctx.loader:
            loss = step(model, features, labels, indices, 0)
        assert loss.device.type == "cuda" and ctx.loader.labels.device.type == "cuda"


@pytest.mark.parametrize("name", ["cb", "wce", "ldam"])
def test_drw_keeps_class_weights_on_the_loss_device_across_its_switch(fake_cuda, name):
    loss = build_loss(name, COUNTS, drw=True, drw_epoch=1)     # built on the CPU, then moved, as a run does
    with fake_cuda():
        loss.to("cuda")
        logits, labels = torch.randn(4, len(COUNTS)), torch.randint(0, len(COUNTS), (4,))
        for epoch in (0, 1, 0):
            loss.set_epoch(epoch)
            assert loss(logits, labels).device.type == "cuda"


def _visible_gpus(monkeypatch, count, calls):
    """torch.cuda as a worker that sees ``count`` GPUs: RNG states per GPU, ``set_rng_state_all``
    refusing more states than GPUs (as torch does, with IndexError)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.full((8,), i, dtype=torch.uint8)
                                                                  for i in range(count)])
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": torch.full((8,), 7, dtype=torch.uint8))

    def set_all(states):
        if len(states) > count:
            raise IndexError("list index out of range")
        calls.append(("all", len(states)))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", set_all)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": calls.append(("one", device)))


def test_checkpoint_written_with_four_gpus_resumes_on_one(monkeypatch, tmp_path):
    from common.engine import TrainConfig, _rng_state, _set_rng_state, fit, feature_step
    features, labels = torch.randn(16, 64), torch.arange(16) % len(COUNTS)
    model = build_model("resnet32", len(COUNTS))
    loader = BatchLoader(features, labels, 8)
    cfg = TrainConfig(epochs=1, amp=False, channels_last=False)
    calls = []
    _visible_gpus(monkeypatch, 4, calls)
    same = {"run_config": {"test": 1}, "classifier_only": True, "progress": False}
    fit(model, loader, cfg, tmp_path, step=feature_step(build_loss("ce", COUNTS)), **same)
    _visible_gpus(monkeypatch, 1, calls)
    history = fit(model, loader, cfg.model_copy(update={"epochs": 2}), tmp_path,
                  step=feature_step(build_loss("ce", COUNTS)), **same)
    assert len(history) == 2
    # a CUDA run keeps its own GPU's state and restores it to that GPU
    state = _rng_state(torch.device("cuda", 0))
    assert torch.equal(state["cuda"], torch.full((8,), 7, dtype=torch.uint8))
    _set_rng_state(state, torch.device("cuda", 0))
    assert calls[-1] == ("one", torch.device("cuda", 0))


def test_record_names_the_run_device_not_the_default(monkeypatch):
    from common.engine import environment
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    env = environment(torch.device("cpu"))
    assert env["device"] == "cpu" and env["device_name"] != "Fake GPU"
    assert environment(torch.device("cuda", 0))["device_name"] == "Fake GPU"


def test_gpu_without_native_bf16_trains_in_fp16_with_loss_scaling(monkeypatch):
    from common.engine import TrainConfig
    from common.precision import choose_numerics
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)   # a V100 / T4
    numerics = choose_numerics(torch.device("cuda"), TrainConfig())
    assert numerics.fp16 and not numerics.bf16 and numerics.record()["fp16"]
    assert "fp16" in numerics.describe() and numerics.autocast_dtype == torch.float16
    assert numerics.grad_scaler(torch.device("cpu")).is_enabled()


def test_loss_scaler_state_is_saved_and_restored_on_resume(tmp_path):
    from common.engine import TrainConfig, feature_step, fit, load_checkpoint
    model, loss = build_model("resnet32", len(COUNTS)), build_loss("ce", COUNTS)
    loader = BatchLoader(torch.randn(16, 64), torch.arange(16) % len(COUNTS), 8)
    fp16 = Numerics(bf16=False, channels_last=False, fp16=True)
    same = {"run_config": {"test": 1}, "classifier_only": True, "progress": False, "numerics": fp16,
            "step": feature_step(loss)}
    fit(model, loader, TrainConfig(epochs=1), tmp_path, **same)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["scaler"]["scale"] == 2.0 ** 16
    ckpt["scaler"]["scale"] = 1024.0           # as a run that had lowered its scale
    torch.save(ckpt, tmp_path / "last.pt")
    fit(model, loader, TrainConfig(epochs=2), tmp_path, **same)
    assert load_checkpoint(tmp_path / "last.pt")["scaler"]["scale"] == 1024.0


def test_progress_to_a_log_file_is_one_line_per_epoch(tmp_path, capsys):
    from common.engine import TrainConfig, feature_step, fit
    loader = BatchLoader(torch.randn(16, 64), torch.arange(16) % len(COUNTS), 2)
    fit(build_model("resnet32", len(COUNTS)), loader, TrainConfig(epochs=2), tmp_path, classifier_only=True,
        step=feature_step(build_loss("ce", COUNTS)), progress=True)
    out, err = capsys.readouterr()          # captured: not a terminal
    assert "it/s" not in err and "\r" not in err
    assert sum(line.startswith("epoch=") for line in out.splitlines()) == 2


@pytest.mark.parametrize("augment", ["standard", "medium", "strong"])
def test_augmentation_makes_at_most_one_host_sync_per_batch(augment):
    from common.data import build_augment
    from common.profiling import HostSyncCounter
    aug, x = build_augment(augment), torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    aug(x)                                          # the first call copies constants to the device once
    with HostSyncCounter() as syncs:
        aug(x)
    assert syncs.count <= 1


@pytest.mark.parametrize("op,magnitude", [("Equalize", 0.0), ("AutoContrast", 0.0), ("Sharpness", 0.5),
                                          ("Sharpness", -0.5)])
def test_batched_autoaugment_ops_match_torchvision(op, magnitude):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import autoaugment as aa

    from common.data import augment as A
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    x[0] = 7                                        # a flat image: equalize and autocontrast leave it alone
    expected = torch.stack([aa._apply_op(img, op, magnitude, InterpolationMode.NEAREST, None) for img in x])
    assert torch.equal(A._apply(x, op, magnitude), expected)


def test_geometric_autoaugment_ops_match_torchvision():
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import autoaugment as aa

    from common.data import augment as A
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    rows, _ = A._source_maps(32, 32)
    for name, magnitude in rows:
        assert torch.equal(A._apply(x, name, magnitude),
                           aa._apply_op(x, name, magnitude, InterpolationMode.NEAREST, None)), (name, magnitude)


@pytest.mark.parametrize("name", ["resnet32", "multi_expert_resnet32"])
def test_compile_compiles_a_bounded_number_of_graphs(monkeypatch, name):
    import torch._dynamo
    from torch._dynamo.utils import counters

    import sla_multiexpert.model  # noqa: F401  (registers multi_expert_resnet32)
    from common import precision
    monkeypatch.setattr(precision, "COMPILE_BACKEND", "eager")
    torch._dynamo.reset()
    counters.clear()
    model = build_model(name, len(COUNTS))
    precision.apply_numerics(model, Numerics(bf16=False, channels_last=True, compiled=True))
    for batch in (8, 8, 5, 8, 3):                   # a shorter last batch, epoch after epoch
        model.train()
        model(precision.match_memory_format(torch.randn(batch, 3, 32, 32), model)).sum().backward()
        model.eval()
        with torch.no_grad():
            model(torch.randn(batch, 3, 32, 32))
    assert 1 <= counters["stats"]["unique_graphs"] <= 6
    assert torch._dynamo.config.fail_on_recompile_limit_hit    # running out of recompiles raises, never eager


STUDIES = ("efficientnet_cifar10lt", "thesis_cifar100lt", "ee443_stacking", "sla_multiexpert")


def _preset_runs() -> dict:
    """One config per distinct training step the studies' presets run (model, loss, augmentation,
    mixup, classifier-only stage, method), named by the first run that uses it."""
    import argparse
    import importlib
    from pathlib import Path

    from common.config import preset_names
    steps = {}
    for name in STUDIES:
        study = importlib.import_module(f"{name}.grid").STUDY
        for preset in preset_names(*study.config_files):
            for job in study.jobs(preset, Path("out"), {}, argparse.Namespace(data=None, only=None, seeds=None)):
                c = job.config
                key = json.dumps([c.model.name, c.model.kwargs, c.loss.name, c.loss.drw, c.train.augment,
                                  c.train.mixup_alpha > 0, c.train.classifier_only, c.train.resize_first,
                                  c.method and [c.method.weighting, c.method.augments, c.method.mixup_alpha > 0]])
                steps.setdefault(key, (f"{name}/{preset}/{job.name}", c))
    return dict(steps.values())


PRESET_RUNS = _preset_runs()


def _model_on(cfg, num_classes, context):
    """``cfg``'s model made on the device of ``context``, or on the CPU where its initialisers read
    values (torchvision's ConvNeXt, timm's ViT): a run makes it on the CPU and moves it."""
    from torch._subclasses.fake_tensor import DataDependentOutputException
    try:
        with context():
            return build_model(cfg.model.name, num_classes, **cfg.model.kwargs)
    except (DataDependentOutputException, NotImplementedError, RuntimeError):
        return copy.deepcopy(_cpu_model(cfg.model.name, json.dumps(cfg.model.kwargs), num_classes))


@functools.cache
def _cpu_model(name, kwargs, num_classes):
    return build_model(name, num_classes, **json.loads(kwargs))


def _training_step(cfg, device, counts, loss, model):
    """(model, step, epoch hooks, a batch) of ``cfg``'s run on ``device``, built as a run builds them
    (``loss`` built on the CPU, ``model`` on the CPU or on ``device``)."""
    from common.datasets import transforms_from_config
    from common.experiment import RunContext
    from common.methods import get_method
    from common.models import freeze_backbone, scale_logits
    loss = loss.to(device)
    if next(model.parameters()).device.type != device.type:
        model = model.to(device)
    scale_logits(model, loss.logit_scale)
    augment, test_tf = transforms_from_config(cfg)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, device=device)
    labels = torch.arange(4, device=device) % len(counts)
    ctx = RunContext(cfg, {"train_counts": counts}, model, loss, BatchLoader(images, labels, 4), test_tf, augment,
                     Numerics(bf16=False, channels_last=True),
                     lambda x, bf16: model.forward_features(test_tf(x)))
    build = get_method(cfg.method.name).build_step if cfg.method is not None else default_step
    step, hooks = build(ctx)
    if cfg.train.classifier_only:
        freeze_backbone(model)
    return model, step, hooks, next(iter(ctx.loader))


def _epochs(cfg) -> tuple:
    """An epoch before and one after every switch the run makes (DRW, the method's stage 2)."""
    switches = [cfg.loss.drw_epoch if cfg.loss.drw else 0]
    if cfg.method is not None:
        switches.append(int(cfg.method.switch_fraction * cfg.train.epochs) if cfg.method.switch_fraction
                        else cfg.method.switch_epoch)
    return tuple(sorted({max(s - 1, 0) for s in switches} | set(switches)))


@pytest.mark.parametrize("run", sorted(PRESET_RUNS))
def test_every_preset_training_step_runs_on_cuda_without_host_syncs(run, fake_cuda, monkeypatch):
    """Forward and loss on fake CUDA (no CPU tensor mixed in, no data-dependent host sync) before and
    after every switch; backward and the optimiser step on meta tensors."""
    from common.data import augment as A
    from common.experiment import loss_from_config
    A._cifar_policy(32, 32), A._source_maps(32, 32)     # AutoAugment's host-side tables, made once per process
    import sla_multiexpert.train as sla_train
    cfg, counts = PRESET_RUNS[run], [40, 20, 10, 5, 3, 2, 1, 1, 1, 1]
    # class weights a run computes once on the host from its counts, before training (not under fake tensors)
    tables = {w: sla_train.class_weight_table(counts, w) for w in ("rw", "cb")}
    monkeypatch.setattr(sla_train, "class_weight_table", lambda c, w: tables[w])
    for device in ("cuda", "meta"):
        on_device = fake_cuda if device == "cuda" else (lambda: torch.device("meta"))
        loss_fn, model = loss_from_config(cfg, counts), _model_on(cfg, len(counts), on_device)
        with on_device():
            model, step, hooks, (x, y, idx) = _training_step(cfg, torch.device(device), counts, loss_fn, model)
            optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
            for epoch in _epochs(cfg):
                for hook in hooks:
                    hook(epoch)
                model.train()
                loss = step(model, x, y, idx, epoch)
                assert loss.device.type == device and loss.dim() == 0
                if device == "meta":
                    loss.backward()
                    optimizer.step()


def test_multi_expert_step_makes_at_most_one_host_sync(monkeypatch):
    """The SLA step (three views, AutoAugment among them; mixup, then the SLA weights) on the CPU,
    counting the syncs a GPU would make."""
    from common.experiment import loss_from_config
    from common.profiling import HostSyncCounter
    name = next(r for r in PRESET_RUNS if r.startswith("sla_multiexpert/") and "multi_expert" in
                PRESET_RUNS[r].model.name and PRESET_RUNS[r].method.weighting == "sla"
                and PRESET_RUNS[r].method.mixup_alpha > 0)
    cfg, counts = PRESET_RUNS[name], [40, 20, 10, 5, 3, 2, 1, 1, 1, 1]
    model = build_model(cfg.model.name, len(counts), **cfg.model.kwargs)
    model, step, hooks, (x, y, idx) = _training_step(cfg, torch.device("cpu"), counts, loss_from_config(cfg, counts),
                                                     model)
    for epoch in _epochs(cfg):
        for hook in hooks:
            hook(epoch)
        step(model, x, y, idx, epoch)                     # constants reach the device on the first step
        with HostSyncCounter() as syncs:
            step(model, x, y, idx, epoch).backward()
        assert syncs.count <= 1, (epoch, syncs.count)
