"""Builds the sample sets a run needs from its config: source train/val, target (unlabelled and a
few labelled units, or a few samples per class), and the target test set. Series windows are
normalized with statistics of their own domain's training rows; images by their input spec."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import numpy as np

from ..catalog import Catalog
from ..errors import TransferlineError
from ..data import (GroupNormalizer, ImageInput, InputSpec, StreamPlan, WindowSpec, WindowStream, Windows,
                    fit_normalizer, get_data_spec, plan_stream, run_classes, series_input, split_by_asset,
                    split_by_time, split_keys, split_windows)
from ..data.factory import check_kind, load_samples
from ..data.images import ImageSamples
from ..data.inputs import TabularInput, TextInput
from ..data.joined_stream import JoinedPlan, plan_joined
from ..data.multimodal import JoinedSamples, RowValues, join_by_time, join_samples
from ..data.stream import RayStream
from ..data.specs import load_windows
from ..data.text import load_texts
from ..data.sample_stream import SamplePlan, SampleStream, plan_samples
from ..data.time_stream import TimeJoinedPlan, plan_time_joined


@dataclass
class RunData:
    source_train: Windows | WindowStream | ImageSamples | SampleStream  # a stream with data.streaming.enabled
    source_val: Windows | WindowStream | ImageSamples | SampleStream
    target_train: Windows | ImageSamples | None = None  # unlabelled use
    target_labelled: Windows | ImageSamples | None = None
    target_val: Windows | ImageSamples | None = None
    test: Windows | ImageSamples | None = None
    normalizers: dict | None = None
    data_spec: WindowSpec | ImageInput | None = None
    class_names: list[str] | None = None  # the run's class list (a stream's windows carry none)
    inputs: InputSpec | None = None  # several inputs: each one's spec, with the statistics it is served with

    @property
    def multi_label(self) -> bool:
        """Whether each sample has a set of labels (multi-hot targets) rather than one class."""
        return bool(getattr(self.source_train, "multi_label", False))

    @property
    def classes(self) -> list[str]:
        """Class names in id order, where the data has them."""
        return list(self.class_names or getattr(self.source_train, "classes", None) or [])

    def input_spec(self) -> InputSpec:
        """What the model takes, with the fitted statistics it is served with (the target's where
        it has its own, else the source's)."""
        if self.inputs is not None:
            return self.inputs
        if not isinstance(self.data_spec, WindowSpec):  # images, text: the spec is the model input
            return InputSpec.of(self.data_spec)
        norm = self.normalizers or {}
        norm = norm.get("target") or norm.get("source")
        names = getattr(self.source_train, "channels", None) if self.data_spec.kind == "waveforms" else None
        return InputSpec.of(series_input(self.data_spec, self.source_train.n_channels, self.source_train.length,
                                         norm.to_dict() if norm else None, signals=names))


def prepare_data(config: dict, catalog: Catalog | None = None, streams: dict | None = None) -> RunData:
    """Source train/val and the target sets, per ``config["data"]``.

    Without source domains the run trains on the labelled target units alone (from scratch or from
    a pretrained encoder): they are split by unit into train and validation. With
    ``data.streaming.enabled`` the source samples (windows, images, texts) are streamed: from
    ``streams`` (what :func:`source_streams` made, with a Ray Train worker's dataset shards in place
    of the datasets) or, without it, from datasets made here.
    """
    catalog = catalog or Catalog(config.get("catalog"))
    spec = _spec(config["data"])
    inputs = input_sources(config["data"], spec)
    for dataset, input_spec, _ in inputs.values() or [(_dataset(config["data"], "source"), spec, None)]:
        check_kind(catalog, dataset, input_spec)
    join = config["data"].get("join") or {"by": "key"}
    classes = _run_classes(catalog, config["data"], spec, inputs)

    whole = {}  # joined by time, the other inputs are read whole: once per set of domains, shared by the sets

    def joined_input(name: str, source: InputSource, split: str | None = None, domains: list[str] | None = None,
                     last_only: bool = False):  # (events have no windows to take the last of)
        if name == join["anchor"]:
            return load_joined_input(name, source, catalog, anchor=True, split=split, domains=domains, classes=classes)
        key = (name, tuple(domains or ()))
        if key not in whole:
            whole[key] = load_joined_input(name, source, catalog, anchor=False, domains=domains)
        return whole[key]

    def load(dataset: str, **kwargs):  # every set of the run takes its class ids from one list
        if inputs and join["by"] == "time":
            return join_by_time({name: joined_input(name, source, **kwargs) for name, source in inputs.items()},
                                anchor=join["anchor"], tolerance_s=float(join["tolerance_s"]))
        if inputs:  # each input's samples, joined by recording and position
            return join_samples({name: _load_input(name, source, catalog, classes=classes, **kwargs)
                                 for name, source in inputs.items()})
        return load_samples(catalog, dataset, spec, classes=classes, **kwargs)

    out = _prepare(config, load, spec, streams, catalog)
    out.data_spec, out.class_names = spec, classes
    _check_not_empty(out, config["data"], spec)
    if inputs:
        _standardize_inputs(out, inputs)
    return out


def _run_classes(catalog: Catalog, data: dict, spec, inputs: dict) -> list[str]:
    """The run's class list: the anchor's (joined by time: its events carry the labels), else the
    first series input's or the source dataset's."""
    join = data.get("join") or {"by": "key"}
    if inputs and join["by"] == "time":
        anchor = inputs[join["anchor"]]
        return run_classes(catalog, anchor.dataset, anchor.spec)
    series = [source.dataset for source in inputs.values() if not source.columns]
    return run_classes(catalog, series[0] if series else _dataset(data, "source"), spec)


class InputSource(NamedTuple):
    """Where one of ``data.inputs`` comes from and how it is cut."""

    dataset: str
    spec: WindowSpec  # a tabular input's cuts where its rows are read, over its columns
    columns: list[str] | None = None  # set for a tabular input


def input_source(data: dict, spec, source: str | dict) -> InputSource:
    """One ``data.inputs`` entry (a dataset name, ``{dataset, spec_options}``, ``{dataset,
    columns}`` or, joined by time, ``{dataset, spec[, spec_options]}``) read against the run's
    ``spec`` (joined by time: the anchor's, which a tabular input reads its rows without)."""
    if isinstance(source, str):
        return InputSource(source, spec)
    if source.get("columns"):
        columns = list(source["columns"])
        base = spec if isinstance(spec, WindowSpec) else WindowSpec("columns", "runs", length=1)  # every row
        return InputSource(source["dataset"], replace(base, features=tuple(columns), normalize="none", row_group=None),
                           columns)
    if "spec" in source:  # an input of its own kind: its spec and its options alone
        return InputSource(source["dataset"], get_data_spec(source["spec"], **(source.get("spec_options") or {})))
    options = {**(data.get("spec_options") or {}), **(source.get("spec_options") or {})}
    return InputSource(source["dataset"], get_data_spec(data["spec"], **options))


def input_sources(data: dict, spec: WindowSpec) -> dict[str, InputSource]:
    """``data.inputs`` by input name (:func:`input_source`)."""
    return {name: input_source(data, spec, source) for name, source in (data.get("inputs") or {}).items()}


def _load_input(name: str, source: InputSource, catalog: Catalog, *, times: bool = False, labelled: bool = True,
                **kwargs):
    """One input's samples: series windows (``times``: with their rows' times), or for a tabular
    input the rows at their ends; images; texts (``labelled=False``: whatever labels they have unread)."""
    try:
        if isinstance(source.spec, WindowSpec) and times:
            samples = load_windows(catalog, source.dataset, source.spec, times=True, **kwargs)
        elif isinstance(source.spec, TextInput) and not labelled:
            samples = load_texts(catalog, source.dataset, source.spec, labelled=False, split=kwargs.get("split"),
                                 domains=kwargs.get("domains"))
        else:
            samples = load_samples(catalog, source.dataset, source.spec, **kwargs)
    except ValueError as exc:
        raise TransferlineError(f"config data.inputs.{name} (dataset {source.dataset!r}): {exc}") from None
    return RowValues.from_windows(samples) if source.columns else samples


def load_joined_input(name: str, source: InputSource, catalog: Catalog, *, anchor: bool, split: str | None = None,
                      domains: list[str] | None = None, classes: list[str] | None = None):
    """One input of a run joined by time. The anchor's events are read as the role asks (split,
    domains, the run's classes); every other input reads the role's domains in every split (an event
    of the test split joins the windows its machine recorded, whichever split holds them), all its
    windows with their times, and no labels of its own."""
    if anchor:
        return _load_input(name, source, catalog, split=split, domains=domains, classes=classes)
    return _load_input(name, source, catalog, times=True, labelled=False, domains=domains)


def _standardize_inputs(out: RunData, sources: dict[str, InputSource]) -> None:
    """Standardizes every set's joined inputs with statistics of the source training samples:
    runs windows normalized by group get a :class:`GroupNormalizer` per input, tabular inputs a
    mean and standard deviation per column (per-window normalization needs neither). Sets
    ``out.inputs``, the spec of each input with those statistics."""
    plan = getattr(out.source_train, "plan", None)
    if plan is not None:  # streamed: the plan fitted each input over the training assets
        out.inputs, transforms = plan.input_spec(), plan.transforms()
    else:
        out.inputs, transforms = _fit_inputs(out.source_train, sources)
    done = {}  # id -> (part, transformed): sets share their inputs' samples, each is transformed once
    for set_name in SET_NAMES:
        samples = getattr(out, set_name)
        if samples is None or not transforms or isinstance(samples, RayStream):  # (streams: in their read tasks)
            continue
        for name, part in samples.parts.items():
            if name in transforms and id(part) not in done:
                done[id(part)] = (part, transforms[name](part))
        setattr(out, set_name, samples.with_parts({name: done[id(part)][1] if name in transforms else part
                                                   for name, part in samples.parts.items()}))


def _fit_inputs(train: JoinedSamples, sources: dict[str, InputSource]) -> tuple[InputSpec, dict]:
    """Each input's spec with statistics fitted over the samples ``train`` reads, and the transforms
    that apply them."""
    transforms, specs = {}, {}
    for name, part in train.parts.items():
        rows = train.input_rows(name)
        if isinstance(part, RowValues):
            stats = part.statistics(rows)
            transforms[name] = partial(replace, **stats)
            specs[name] = TabularInput(tuple(part.channels), tuple(stats["mean"].tolist()), tuple(stats["std"].tolist()))
            continue
        if not isinstance(part, Windows):  # images, texts: preprocessed by their own input spec
            specs[name] = part.spec
            continue
        if not len(rows) and _group_norm(sources[name].spec):
            raise TransferlineError(f"config data.inputs.{name}: no source training sample has this input, so its "
                                    "normalization cannot be fitted; check data.join.tolerance_s and the input's "
                                    "plants, assets and times")
        norm = GroupNormalizer.fit(part.subset(rows)) if _group_norm(sources[name].spec) else None
        if norm:
            transforms[name] = norm.transform
        specs[name] = series_input(sources[name].spec, part.n_channels, part.length,
                                   norm.to_dict() if norm else None, signals=part.channels)
    return InputSpec(specs), transforms


SET_NAMES = {"source_train": "source training", "source_val": "validation", "target_train": "unlabelled target",
             "target_labelled": "labelled target", "target_val": "target validation", "test": "test"}


def _check_not_empty(out: RunData, data: dict, spec) -> None:
    """Raises TransferlineError naming the first set of ``out`` that has no samples, and what
    in ``data`` chose it (a run would otherwise fail later inside a metric, or train on nothing)."""
    for name, what in SET_NAMES.items():
        samples = getattr(out, name)
        if samples is None or len(samples):  # (streams know their size from the plan)
            continue
        if data["time_split"] and isinstance(spec, WindowSpec):
            why = (f"with data.time_split={data['time_split']} and data.val_fraction={data['val_fraction']}, no part "
                   f"of a recording holds a whole window of {spec.length} samples; shorten the window "
                   "(data.spec_options.length) or move the split")
        else:
            role = {"source_train": "source", "source_val": "source", "test": "test"}.get(name, "target")
            where = f"dataset {_dataset(data, role)!r}" if not data.get("inputs") else \
                f"the inputs' datasets {sorted({input_source(data, spec, s).dataset for s in data['inputs'].values()})}"
            why = (f"check data.{role} ({where}, split {data[role].get('split')!r}, "
                   f"domains {data[role].get('domains')}) and data.val_fraction")
        raise TransferlineError(f"config data: the {what} set has no samples; {why}")


def _prepare(config: dict, load, spec: WindowSpec, streams: dict | None, catalog: Catalog) -> RunData:
    data, seed = config["data"], config["seed"]
    group_norm = _group_norm(spec) and not data.get("inputs")  # several inputs: see _standardize_inputs
    if not data["source"]["domains"]:
        return _target_only(config, load, group_norm)
    if data["streaming"]["enabled"]:
        streams = streams or source_streams(config, catalog)
        plan: StreamPlan | SamplePlan | JoinedPlan = streams["plan"]
        shuffle = data["streaming"]["shuffle_samples" if isinstance(plan, (SamplePlan, TimeJoinedPlan))
                                    else "shuffle_windows"]
        out = RunData(plan.stream_of(streams["train_keys"], streams["source_train"], shuffle),
                      plan.stream_of(streams["val_keys"], streams["source_val"], shuffle),
                      normalizers={"source": plan.normalizer} if plan.normalizer else {})
        return _add_target(config, load, group_norm, out)
    within = data["time_split"] or data["window_split"]  # each recording split into training and test
    source_all = load(_dataset(data, "source"), split=data["source"]["split"] if not within else None,
                      domains=data["source"]["domains"])
    if within:
        source_all, _ = _split_recordings(data, source_all, within, data["test"]["holdout_seed"])
        source_train, source_val = _split_recordings(data, source_all, 1 - data["val_fraction"], seed)
    else:
        parts = split_by_asset(source_all, {"train": 1 - data["val_fraction"], "val": data["val_fraction"]}, seed=seed)
        source_train, source_val = parts["train"], parts["val"]
    normalizers = {}
    if group_norm:
        normalizers["source"] = GroupNormalizer.fit(source_train)
        source_train = normalizers["source"].transform(source_train)
        source_val = normalizers["source"].transform(source_val)
    return _add_target(config, load, group_norm, RunData(source_train, source_val, normalizers=normalizers))


def source_streams(config: dict, catalog: Catalog | None = None, read_cpus: float = 1.0) -> dict:
    """Driver side of streaming: the plan of :func:`plan_source` and the lazy Ray Datasets
    ``source_train`` (shuffled) and ``source_val``, whose read tasks each take ``read_cpus``."""
    import ray.data

    from .._ray import ensure_ray

    ensure_ray()
    context = ray.data.DataContext.get_current()  # workers inherit the driver's
    context.enable_progress_bars = bool(config["progress"])
    context.print_on_execution_start = False
    plan, train_keys, val_keys = plan_source(config, catalog)
    seed = config["seed"]
    return {"plan": plan, "train_keys": train_keys, "val_keys": val_keys,
            "source_train": plan.dataset_of(train_keys, seed=seed, shuffle=True, num_cpus=read_cpus),
            "source_val": plan.dataset_of(val_keys, seed=seed, shuffle=False, num_cpus=read_cpus)}


def plan_source(config: dict, catalog: Catalog | None = None) -> tuple[StreamPlan | SamplePlan | JoinedPlan,
                                                                        list, list]:
    """Indexes the source selection, splits its assets (images and texts: its samples) into train
    and validation as the in-memory path does, and fits a series normalizer on the training assets
    (several inputs: each input's statistics): ``(plan, train keys, validation keys)``."""
    data, seed = config["data"], config["seed"]
    catalog = catalog or Catalog(config.get("catalog"))
    spec = _spec(data)
    source, dataset = data["source"], _dataset(data, "source")
    inputs = input_sources(data, spec)
    join = data.get("join") or {"by": "key"}
    if inputs and join["by"] == "time":  # events with what their machines recorded, joined in each read task
        anchor = inputs[join["anchor"]]
        others = {name: s for name, s in inputs.items() if name != join["anchor"]}
        try:
            plan = plan_time_joined(
                catalog, anchor=join["anchor"], names=list(inputs), anchor_spec=anchor.spec,
                anchor_dataset=anchor.dataset, sources={name: tuple(s) for name, s in others.items()},
                readers={name: partial(load_joined_input, name, s, anchor=False, domains=source["domains"])
                         for name, s in others.items()},
                group_norm=[name for name, s in others.items() if not s.columns and _group_norm(s.spec)],
                tolerance_s=float(join["tolerance_s"]), split=source["split"], domains=source["domains"],
                classes=_run_classes(catalog, data, spec, inputs), samples_per_task=data["streaming"]["samples_per_task"])
        except ValueError as exc:
            raise TransferlineError(f"config data.inputs.{join['anchor']} (dataset {anchor.dataset!r}): {exc}") from None
        train_keys, val_keys = plan.split(data["val_fraction"], seed)
        plan.fit(train_keys)
        return plan, train_keys, val_keys
    if inputs:  # several series (and tabular) inputs, joined by key in each read task
        for name, input_ in inputs.items():
            if not isinstance(input_.spec, WindowSpec):
                raise TransferlineError(f"config data.inputs.{name}: streamed inputs are joined by key, series "
                                        f"windows or tabular columns; dataset {input_.dataset!r} is read as "
                                        f"{type(input_.spec).__name__} (read it into memory: "
                                        "data.streaming.enabled=false)")
        plan = plan_joined(catalog, {name: tuple(s) for name, s in inputs.items()}, split=source["split"],
                           domains=source["domains"], classes=_run_classes(catalog, data, spec, inputs),
                           rows_per_task=data["streaming"]["rows_per_task"])
        train_keys, val_keys = split_keys(plan.index, data["val_fraction"], seed)
        plan.fit(train_keys)
        return plan, train_keys, val_keys
    if not isinstance(spec, WindowSpec):  # images, texts: each sample its own unit
        plan = plan_samples(catalog, dataset, spec, split=source["split"], domains=source["domains"],
                            classes=run_classes(catalog, dataset, spec),
                            samples_per_task=data["streaming"]["samples_per_task"])
        return plan, *plan.split(data["val_fraction"], seed)
    plan = plan_stream(catalog, dataset, spec, split=source["split"], domains=source["domains"],
                       rows_per_task=data["streaming"]["rows_per_task"])
    plan.classes = run_classes(catalog, plan.dataset, spec)
    train_keys, val_keys = split_keys(plan.index, data["val_fraction"], seed)
    if _group_norm(spec):
        plan.normalizer = fit_normalizer(catalog, plan.dataset, spec, split=plan.split, domains=plan.domains,
                                         keys=train_keys)
    return plan, train_keys, val_keys


def _add_target(config: dict, load, group_norm: bool, out: RunData) -> RunData:
    """Loads the target sets (unlabelled, labelled units, test) into ``out``."""
    data, seed = config["data"], config["seed"]
    normalizers = out.normalizers
    target = data["target"]
    if not target.get("domains"):
        return out
    target_all, test = _target_and_test(config, load)
    if group_norm:
        normalizers["target"] = GroupNormalizer.fit(target_all)  # target train rows, no labels used
        target_all, test = normalizers["target"].transform(target_all), normalizers["target"].transform(test)
    out.target_train, out.test = target_all, test
    n_labelled = int(target.get("labelled_units") or 0)
    out.target_labelled = _labelled(target, target_all, seed)
    if n_labelled >= 2 and config["early_stopping"]["metric"] == "target_val":
        out.target_labelled, out.target_val = _hold_out_units(out.target_labelled)
    if not target.get("unlabelled", True):
        out.target_train = None
    return out


def _spec(data: dict) -> WindowSpec | ImageInput:
    return get_data_spec(data["spec"], **(data.get("spec_options") or {}))


def _group_norm(spec) -> bool:
    """Whether rows are standardized per group, with statistics of each domain's training rows."""
    return isinstance(spec, WindowSpec) and spec.normalize == "group" and spec.kind == "runs"


def _target_and_test(config: dict, load):
    """The target's training samples and the test set: from the test split, from the end of each
    recording (``time_split``) or the windows dealt to it at random (``window_split``), or held out per
    class from the target's samples (``test.holdout``)."""
    data, target, test_cfg = config["data"], config["data"]["target"], config["data"]["test"]
    within = data["time_split"] or data["window_split"]
    if within:
        return _split_recordings(data, load(_dataset(data, "target"), domains=target["domains"]), within,
                                 test_cfg["holdout_seed"])
    target_all = load(_dataset(data, "target"), split=target["split"], domains=target["domains"])
    if test_cfg["holdout"]:
        if not hasattr(target_all, "holdout"):
            raise ValueError("data.test.holdout holds out images or texts per class; series windows take a test "
                             "split or data.time_split")
        return target_all.holdout(test_cfg["holdout"], test_cfg["holdout_seed"])
    test = load(_dataset(data, "test"), split=test_cfg["split"], domains=test_cfg["domains"] or target["domains"],
                last_only=test_cfg["last_only"])
    return target_all, test


def _split_recordings(data: dict, windows: Windows, fraction: float, seed: int) -> tuple[Windows, Windows]:
    """Each recording split into ``fraction`` and the rest: in time (``data.time_split``: the
    earlier part first) or by dealing its windows at random by ``seed`` (``data.window_split``)."""
    return split_by_time(windows, fraction) if data["time_split"] else split_windows(windows, fraction, seed)


def _labelled(target: dict, samples, seed: int):
    """The labelled target samples: ``labelled_units`` whole units, or ``per_class`` of each class."""
    if target.get("per_class"):
        if not hasattr(samples, "per_class"):
            raise ValueError("target.per_class draws samples of each class from image or text datasets; series "
                             "take target.labelled_units (whole units)")
        return samples.per_class(int(target["per_class"]), seed + 1000)
    n = int(target.get("labelled_units") or 0)
    return labelled_units(samples, n, seed) if n else None


def _dataset(data: dict, role: str) -> str:
    return data[role].get("dataset") or data["dataset"]


def labelled_units(windows: Windows, n: int, seed: int) -> Windows:
    """The windows of ``n`` units drawn with ``seed`` (the same units for every method of a seed)."""
    assets = np.unique(windows.assets)
    if n > len(assets):
        raise ValueError(f"target.labelled_units={n} but the target has {len(assets)} units")
    chosen = np.random.default_rng(seed + 1000).choice(assets, n, replace=False)
    return windows.subset(np.isin(windows.assets, chosen))


def _hold_out_units(windows: Windows) -> tuple[Windows, Windows]:
    """Splits off a fifth of the units (at least one) for validation."""
    assets = np.unique(windows.assets)
    held = assets[: max(1, len(assets) // 5)]
    mask = np.isin(windows.assets, held)
    return windows.subset(~mask), windows.subset(mask)


def _target_only(config: dict, load, group_norm: bool) -> RunData:
    """Trains on labelled target data alone. Whole units are split into train and validation; with
    ``per_class`` (few-shot) the few labelled samples are all trained on and validated on as well,
    so the schedule (epochs, patience), not a held-out score, decides when training stops."""
    target = config["data"]["target"]
    n, k = int(target.get("labelled_units") or 0), int(target.get("per_class") or 0)
    if not target.get("domains") or (n < 2 and not k):
        raise ValueError("without source domains, give target.domains and target.labelled_units >= 2 (or "
                         "target.per_class for images)")
    target_all, test = _target_and_test(config, load)
    labelled = _labelled(target, target_all, config["seed"])
    train, val = (labelled, labelled) if k else _hold_out_units(labelled)
    normalizers = {}
    if group_norm:  # fitted on the target's training rows (labels unused), as in the transfer runs
        normalizers["target"] = GroupNormalizer.fit(target_all)
        train, val, test = (normalizers["target"].transform(w) for w in (train, val, test))
    return RunData(source_train=train, source_val=val, test=test, normalizers=normalizers)
