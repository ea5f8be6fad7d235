"""Typed run configs: one pydantic schema per section, every default written once, here.

A config file is YAML with the sections ``data``, ``model``, ``loss``, ``train``, ``eval``
(and ``method``, a study's own training step, see :mod:`common.methods`) plus optional
``presets: {NAME: partial config}``. :func:`load_config` merges, in this order, the file, the
chosen preset, a grid's per-run overrides and ``--set`` overrides, and validates the result:
an unknown key, a wrong type, an unknown model / loss / augmentation / preset name or a
non-positive epoch count raises :class:`ConfigError` naming the key, where it came from and
what is accepted, before any data is read. Every preset of the file is validated too.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import json
import typing
from pathlib import Path
from typing import Annotated, Any, Callable

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat,
                      PositiveInt, PrivateAttr, SerializeAsAny, ValidationError, create_model, field_validator,
                      model_validator)

from .cli import close_match
from .data import AUGMENTATIONS, GROUP_NAMES, LONGTAIL_PROFILES, NORMALISATIONS
from .data.cifar import LAYOUTS
from .losses import LOSSES
from .methods import get_method
from .models import MODELS
from .optim import OPTIMIZERS, SCHEDULES


class ConfigError(ValueError):
    """A config that cannot run; the message names each bad key, its source and the fix.
    ``problems``: ``(source, location, message)`` of each, for a caller that names keys its own
    way (``common.train`` names the flag)."""

    def __init__(self, message: str, problems=()):
        super().__init__(message)
        self.problems = list(problems)


def format_problems(problems, name: Callable[[str, tuple], str | None] = lambda source, loc: None) -> str:
    """The message of :class:`ConfigError`: one line per problem, ``source: key.path: message``,
    or ``NAME.rest: message`` where ``name(source, location)`` gives a name for the key."""
    def line(source, loc, message):
        if not loc:
            return message
        named = name(source, loc)
        where = named + "".join(f".{p}" for p in loc[2:]) if named else f"{source}: {'.'.join(map(str, loc))}"
        return f"{where}: {message}"

    lines = [line(*p) for p in problems]
    return "invalid config: " + lines[0] if len(lines) == 1 else "invalid config:\n" + "\n".join(f"  {x}" for x in lines)


def one_of(choices, what: str):
    """A validator: the value must be a key of the registry ``choices`` (read at validation
    time, so names registered later count)."""
    def check(value):
        if value not in choices:
            raise ValueError(f"unknown {what} {value!r}{close_match(value, choices)}; "
                             f"accepted: {', '.join(sorted(map(str, choices)))}")
        return value
    check.choices = choices    # for command-line help
    return AfterValidator(check)


def _imbalance(value: float) -> float:
    if not 0 < value <= 1:
        hint = f" (imbalance ratio {value:g} is imb_factor {1 / value:.6g})" if value > 1 else ""
        raise ValueError(f"imb_factor is n_min / n_max, in (0, 1]; got {value:g}{hint}")
    return value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class DataConfig(Section):
    dataset: Annotated[str, one_of(LAYOUTS, "dataset")]
    split: Annotated[str, one_of(("standard", "thesis"), "split")] = "standard"
    imb_factor: Annotated[float, AfterValidator(_imbalance)] | None = None
    """n_min / n_max; None: the whole set"""
    profile: Annotated[str, one_of(LONGTAIL_PROFILES, "long-tail profile")] = "exp"
    min_count: NonNegativeInt = 0
    """floor of every class count"""
    lt_seed: int = 0
    """LDAM-DRW's selection seed"""
    classes: PositiveInt | None = None
    """keep the first k classes, renumbered"""
    max_per_class: PositiveInt | None = None
    """standard split: the first n images of each class only, before the long-tailed selection (a smaller proxy)"""
    val_per_class: PositiveInt | None = None
    """standard split: the last n training images of each class held out first, a balanced validation set
    (test set ``validation``: for choosing sweep points without the test set)"""
    sampler: Annotated[str, one_of(("class_balanced",), "sampler")] | None = None
    validate_on_test: bool = False
    """standard split: validate every epoch on the test set"""
    balance_threshold: PositiveInt | None = None
    """seed 002's artificial balancing: every class re-sampled to this many images"""
    bag_threshold: PositiveInt | None = None
    """seed 002's balanced bagging: max count // this many learners"""
    bag_index: NonNegativeInt | None = None
    """which learner of that bagging this run trains"""
    folds: int | None = Field(None, ge=2)
    """cross-fitting: this many stratified folds of the training set"""
    fold: NonNegativeInt | None = None
    """train without this fold and predict it (test set ``heldout_fold``; a learned stacker's input)"""
    # split: thesis (seed 001) -- per-class sizes out of the official train set
    train_set: Annotated[str, one_of(("balanced", "long_tailed"), "training set")] = "long_tailed"
    train_per_class: PositiveInt = 450
    """split thesis: training images per class taken out of the official train set"""
    test_per_class: PositiveInt = 50
    """split thesis: test images per class taken out of the official train set"""
    split_seed: int = 42
    """split thesis: the seed of that split"""

    @model_validator(mode="after")
    def _consistent(self):
        if self.split == "thesis" and self.imb_factor is None:
            raise ValueError("split 'thesis' needs imb_factor (the long-tailed subset's n_min / n_max)")
        if (self.bag_threshold is None) != (self.bag_index is None):
            raise ValueError("bag_threshold and bag_index go together (which learner of which bagging)")
        if self.balance_threshold and self.bag_threshold:
            raise ValueError("balance_threshold and bag_threshold are two different re-samplings: choose one")
        if self.split == "thesis" and (self.balance_threshold or self.bag_threshold or self.folds or self.val_per_class):
            raise ValueError("artificial balancing, bagging, folds and val_per_class split the standard split's "
                             "training set")
        if (self.folds is None) != (self.fold is None):
            raise ValueError("folds and fold go together (which fold of how many is held out)")
        if self.folds is not None and self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} of {self.folds} folds: expected 0 <= fold < folds")
        if self.classes is not None and self.classes > LAYOUTS[self.dataset].num_classes:
            raise ValueError(f"classes {self.classes} > the {LAYOUTS[self.dataset].num_classes} classes of {self.dataset}")
        return self


class ModelConfig(Section):
    name: Annotated[str, one_of(MODELS, "model")]
    pretrained: bool = False
    """library ImageNet weights (download / cache)"""
    weights: str | None = None
    """a local weights file instead"""
    kwargs: dict[str, Any] = {}
    """to the model builder, e.g. timm's dynamic_img_size"""
    init_from: str | None = None
    """a finished run (folder beside this one, or a path) whose kept weights (train.keep_weights) start this run"""
    reset_classifier: bool = False
    """re-initialise the classifier after loading init_from"""
    lws: bool = False
    """learnable weight scaling (Kang et al. 2020): train a per-class scale of the loaded classifier, nothing else"""
    classifier_prior: float | None = Field(None, gt=0, lt=1)
    """start a fresh classifier's bias at -log((1 - p) / p), so every sigmoid starts at p (Cui et al. 2019: p = 0.1)"""

    @model_validator(mode="after")
    def _prior_needs_a_fresh_classifier(self):
        if self.classifier_prior is not None and (self.lws or (self.init_from and not self.reset_classifier)):
            raise ValueError("classifier_prior initialises a fresh classifier: with init_from it needs "
                             "reset_classifier: true (and no lws)")
        return self


class LossConfig(Section):
    """``name`` plus that loss's own keyword arguments (checked against its signature)."""
    model_config = ConfigDict(extra="allow", validate_assignment=True, use_attribute_docstrings=True)
    name: Annotated[str, one_of(LOSSES, "loss")] = "ce"
    drw: bool = False
    """deferred re-weighting (LDAM-DRW)"""
    drw_epoch: NonNegativeInt = 160
    """the epoch deferred re-weighting starts"""
    drw_beta: float = Field(0.9999, ge=0, lt=1)
    """deferred re-weighting's effective-number beta"""


class TrainConfig(Section):
    epochs: PositiveInt = 200
    batch_size: PositiveInt = 128
    optimizer: Annotated[str, one_of(OPTIMIZERS, "optimizer")] = "sgd"
    lr: PositiveFloat = 0.1
    momentum: NonNegativeFloat = 0.9
    nesterov: bool = False
    weight_decay: NonNegativeFloat = 2e-4
    schedule: Annotated[str, one_of(SCHEDULES, "schedule")] = "multistep"
    milestones: list[NonNegativeInt] = [160, 180]
    """schedule multistep: the epochs where the rate is multiplied by gamma"""
    gamma: PositiveFloat = 0.1
    """schedule step / multistep: the rate's factor at each step"""
    step_size: PositiveInt = 30
    """schedule step: epochs between steps"""
    warmup_epochs: NonNegativeInt = 0
    """linear warm-up of the rate over this many epochs"""
    mixup_alpha: NonNegativeFloat = 0.0
    """mixup's Beta(alpha, alpha); 0: no mixup"""
    amp: bool = True
    """bf16 autocast where the hardware runs it natively (CUDA; CPUs with AMX-BF16 / AVX-512-BF16), else fp32"""
    channels_last: bool = True
    """channels_last tensors (a layout: used on every device, in fp32 as in bf16)"""
    compile: bool = False
    """torch.compile the functions a step runs through, whole (forward_features; a multi-expert model's expert_outputs) (opt-in: compiling takes about a minute on a CPU and needs a C++ compiler there)"""
    seed: int = 0
    deterministic: bool = False
    """True: cudnn.deterministic; False: cudnn.benchmark"""
    select_best: bool = False
    """keep best.pt by validation accuracy and evaluate it"""
    eval_every: PositiveInt = 1
    """validate every this many epochs"""
    augment: Annotated[str, one_of(AUGMENTATIONS, "augmentation")] = "standard"
    size: PositiveInt | None = None
    """resize to size x size (ImageNet models)"""
    resize_first: bool = False
    """resize before augmenting (the thesis's order)"""
    normalize: Annotated[str, one_of(NORMALISATIONS, "normalisation")] | None = None
    """None: the dataset's own"""
    eval_batch_size: PositiveInt = 500
    classifier_only: bool = False
    """freeze the backbone (BatchNorm statistics too), train the classifier"""
    keep_weights: bool = False
    """keep the final weights (weights.pt) for runs that start from them"""

    @model_validator(mode="after")
    def _cached_features_need_no_mixup(self):
        if self.classifier_only and self.augment == "none" and self.mixup_alpha > 0:
            raise ValueError("classifier_only with augment 'none' trains on cached features, which mixup cannot mix; "
                             "set mixup_alpha 0 or an augmentation")
        return self


class EvalConfig(Section):
    groups: list[Annotated[str, one_of(GROUP_NAMES, "class grouping")]] = ["shot"]
    """class groupings to report: shot (many / medium / few), thirds (head / middle / tail)"""
    n_bins: PositiveInt = 15
    """ECE bins"""


class ExperimentConfig(Section):
    data: DataConfig
    model: ModelConfig
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    method: SerializeAsAny[BaseModel] | None = None    # validated by the registered method's schema
    _preset: str | None = PrivateAttr(None)

    @property
    def preset(self) -> str | None:
        return self._preset

    @field_validator("method", mode="before")
    @classmethod
    def _method_is_validated_by_its_schema(cls, value):
        if value is not None and not isinstance(value, BaseModel):
            raise ValueError("validate configs with common.config.validate_config, which applies the method's schema")
        return value

    @model_validator(mode="after")
    def _resolve(self):
        if self.train.select_best and self.data.split != "thesis" and not self.data.validate_on_test:
            raise ValueError("train.select_best needs a validation set: data.split 'thesis' or data.validate_on_test")
        for key in ("reset_classifier", "lws"):
            if getattr(self.model, key) and not self.model.init_from:
                raise ValueError(f"model.{key} needs model.init_from (the run whose weights are loaded)")
        if self.train.normalize is None:   # resolved here, so the stored config says what ran
            self.train.normalize = self.data.dataset
        return self


def deep_merge(base: dict, override: dict | None) -> dict:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_overrides(items) -> dict:
    """``["train.epochs=5", "model.pretrained=false"]`` -> nested dict; values are parsed as YAML."""
    overrides = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key or "" in key.split("."):
            raise ConfigError(f"--set {item!r} is not SECTION.KEY=VALUE (e.g. --set train.epochs=5)")
        node = overrides
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r} conflicts with another --set of {p}")
        node[leaf] = yaml.safe_load(value)
    return overrides


def read_config_file(path) -> tuple[dict, dict]:
    """``(base, presets)`` of a config file, both plain mappings. ``extends: OTHER.yaml`` (beside
    it) starts from that file: its sections and presets, with this file's merged over them. Each
    file is parsed once per process (until it changes); each call gets its own copy."""
    return copy.deepcopy(_merged_config_file(config_version(path)))


def config_version(path) -> tuple:
    """``((file, mtime), (the file it extends, mtime), ...)``: the chain of files behind ``path``,
    one stat each; a cache key that changes when any of them does."""
    chain, path = [], Path(path)
    while True:
        if path.resolve() in [p.resolve() for p, _ in chain]:
            raise ConfigError(f"{chain[0][0]}: 'extends' goes round in a circle: "
                              f"{' -> '.join(str(p) for p, _ in chain)} -> {path}")
        stamp = _mtime(path)
        chain.append((path, stamp))
        parent = _parsed_config_file(path, stamp)[2]
        if parent is None:
            return tuple(chain)
        path = path.parent / parent


@functools.lru_cache(maxsize=None)
def _merged_config_file(version: tuple) -> tuple[dict, dict]:
    """The chain ``version`` names merged, root first: every file's sections and presets over its parent's."""
    base, presets = {}, {}
    for path, stamp in reversed(version):
        raw, own_presets, _ = _parsed_config_file(path, stamp)
        base = deep_merge(base, raw)
        presets = {name: deep_merge(presets.get(name, {}), own_presets.get(name)) for name in {**presets, **own_presets}}
    return base, presets


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from err


@functools.lru_cache(maxsize=None)
def _parsed_config_file(path: Path, stamp: int) -> tuple[dict, dict, str | None]:
    """One file's own sections, presets and ``extends`` target, before any merging."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config is a mapping of sections, got {type(raw).__name__}")
    presets = raw.pop("presets", None) or {}
    if not isinstance(presets, dict) or not all(isinstance(p, dict) for p in presets.values()):
        raise ConfigError(f"{path}: presets must map each preset name to a partial config")
    parent = raw.pop("extends", None)
    if parent is not None and not isinstance(parent, str):
        raise ConfigError(f"{path}: extends names one config file beside it, got {parent!r}")
    return raw, presets, parent


def preset_names(*paths) -> list[str]:
    """The presets every one of ``paths`` defines, in the first file's order."""
    names = list(read_config_file(paths[0])[1])
    for path in paths[1:]:
        names = [n for n in names if n in read_config_file(path)[1]]
    return names


def check_preset(name, accepted, where: str) -> None:
    if name not in accepted:
        raise ConfigError(f"{where}: unknown preset {name!r}{close_match(name, accepted)}; "
                          f"accepted: {', '.join(accepted)}")


def load_config(path, preset: str | None = None, overrides: dict | None = None, cli: dict | None = None
                ) -> ExperimentConfig:
    """The validated config of ``path`` under ``preset``, with a grid's ``overrides`` and the
    command line's ``cli`` (``--set``) on top. Every preset of the file is checked as well."""
    version = config_version(path)
    base, presets = copy.deepcopy(_merged_config_file(version))
    _check_other_presets(Path(path), version, preset)
    layers = [(str(path), base)]
    if preset is not None:
        check_preset(preset, list(presets), str(path))
        layers.append((f"{path} (presets.{preset})", presets[preset]))
    layers += [("the grid's per-run settings", overrides or {}), ("--set", cli or {})]
    merged = {}
    for _, layer in layers:
        merged = deep_merge(merged, layer)
    cfg = validate_config(merged, layers[::-1])
    cfg._preset = preset
    return cfg


@functools.lru_cache(maxsize=None)
def _check_other_presets(path: Path, version: tuple, preset: str | None) -> None:
    """Every preset of ``path`` but ``preset`` validates (once per process and ``version`` of the
    file and its parents: a grid resolves a file for each of its runs)."""
    base, presets = _merged_config_file(version)
    for name, partial in presets.items():
        if name != preset:
            validate_config(deep_merge(base, partial), [(f"{path} (presets.{name})", partial), (str(path), base)])


def validate_config(raw: dict, layers=()) -> ExperimentConfig:
    """``raw`` as an :class:`ExperimentConfig`; ``layers`` ((source, mapping), latest first)
    say where a bad key came from. Raises :class:`ConfigError` listing every problem."""
    raw = dict(raw)
    method_raw = raw.pop("method", None)
    method = None
    if isinstance(method_raw, dict) and isinstance(method_raw.get("name"), str):
        method = get_method(method_raw["name"])    # first: a method may register models and losses
    problems = []
    try:
        cfg = ExperimentConfig.model_validate(raw)
        problems += _check_loss_kwargs(cfg.loss)
    except ValidationError as err:
        problems += _problems(err, ExperimentConfig, ())
        cfg = None
        try:  # the loss's own keywords are worth reporting alongside
            problems += _check_loss_kwargs(LossConfig.model_validate(raw.get("loss", {})))
        except ValidationError:
            pass
    if method_raw is not None:
        if not isinstance(method_raw, dict) or "name" not in method_raw:
            problems.append((("method", "name"), "a method section needs the name of a registered method"))
        elif method is None:
            from .methods import METHODS
            name = method_raw["name"]
            problems.append((("method", "name"), f"no method {name!r} is registered and no module {name!r} registers "
                                                 f"one{close_match(name, METHODS)}; registered: {', '.join(METHODS)}"))
        else:
            try:
                parsed = method.schema.model_validate(method_raw)
                if cfg is not None:
                    cfg = cfg.model_copy(update={"method": parsed})
            except ValidationError as err:
                problems += _problems(err, method.schema, ("method",))
    if problems:
        located = [(_source(loc, layers) if loc else None, loc, msg) for loc, msg in problems]
        raise ConfigError(format_problems(located), located)
    return cfg


def _problems(err: ValidationError, schema: type[BaseModel], prefix: tuple) -> list[tuple[tuple, str]]:
    out = []
    for e in err.errors():
        loc = prefix + tuple(e["loc"])
        if e["type"] == "extra_forbidden":
            fields = _fields_at(schema, tuple(e["loc"])[:-1])
            key = loc[-1]
            out.append((loc, f"unknown key{close_match(key, fields)}; accepted here: {', '.join(fields)}"))
        elif e["type"] == "missing":
            out.append((loc, "required, not set"))
        elif e["type"] == "value_error":
            out.append((loc, e["msg"].removeprefix("Value error, ")))
        else:
            got = repr(e["input"])
            out.append((loc, f"{e['msg']} (got {got if len(got) <= 60 else got[:57] + '...'})"))
    return out


def _fields_at(schema: type[BaseModel], loc: tuple) -> list[str]:
    """The keys the section at ``loc`` of ``schema`` accepts."""
    for part in loc:
        field = schema.model_fields.get(part) if isinstance(part, str) else None
        schema = _model_in(field.annotation) if field else None
        if schema is None:
            return []
    return list(schema.model_fields)


def _model_in(annotation):
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def loss_kwargs_schema(name: str) -> type[BaseModel]:
    """The keyword arguments of loss ``name``'s constructor (past the class counts) as a schema."""
    return _kwargs_schema(LOSSES[name], name)


@functools.lru_cache(maxsize=None)
def _kwargs_schema(cls, name: str) -> type[BaseModel]:
    init = cls.__init__
    hints = typing.get_type_hints(init)
    params = list(inspect.signature(init).parameters.values())[2:]     # self, class_counts
    fields = {p.name: (hints.get(p.name, Any), ... if p.default is inspect.Parameter.empty else p.default)
              for p in params if p.kind is p.POSITIONAL_OR_KEYWORD or p.kind is p.KEYWORD_ONLY}
    return create_model(f"{name}_loss", __config__=ConfigDict(extra="forbid"), **fields)


def _check_loss_kwargs(loss: LossConfig) -> list[tuple[tuple, str]]:
    extra = loss.model_extra or {}
    schema = loss_kwargs_schema(loss.name)
    try:
        schema.model_validate(extra)
    except ValidationError as err:
        found = _problems(err, schema, ("loss",))
        own = [f for f in LossConfig.model_fields]
        return [(loc, msg.replace("accepted here: ", f"accepted here: {', '.join(own)}, ") if "unknown key" in msg else msg)
                for loc, msg in found]
    return []


def _source(loc: tuple, layers) -> str:
    """The first of ``layers`` (latest first) that sets ``loc``; else the file itself."""
    for source, layer in layers:
        node = layer
        for part in loc:
            if isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                break
        else:
            return source
    return layers[-1][0] if layers else "config"


def config_record(cfg: ExperimentConfig) -> dict:
    """The resolved config as plain data (every default filled in), as a record stores it."""
    return cfg.model_dump(mode="json")


def upgrade_config(config: dict) -> dict:
    """A stored config under today's schema: keys added since it was written take their
    defaults; a config that no longer validates (a key removed or renamed) comes back as it is."""
    config = copy.deepcopy(config)
    if isinstance(config.get("method"), dict):   # before methods were named, seed 003's was the only one
        config["method"].setdefault("name", "sla_multiexpert")
    try:
        return config_record(validate_config(config))
    except (ConfigError, TypeError, AttributeError):
        return config


def config_hash(cfg: ExperimentConfig | dict) -> str:
    """A short hash of the resolved config: two runs with the same hash trained the same way."""
    data = config_record(cfg) if isinstance(cfg, BaseModel) else cfg
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf where two plain configs differ."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def main(argv=None):
    """Check that every config FILE defines PRESET; else say which presets they define (run_all.sh
    checks ``$PRESET`` with this before touching any data)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    try:
        check_preset(args.preset, preset_names(*args.files), " ".join(args.files))
    except ConfigError as err:
        sys.exit(f"error: {err}")
