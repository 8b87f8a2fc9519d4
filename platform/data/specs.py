"""Named window specs for the built-in datasets, and loading windows from the catalog."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog import Catalog
from .inputs import ImageInput, SeriesInput, TextInput
from .windows import Windows, run_windows, waveform_windows

# NOTE: the 14 C-MAPSS sensors that vary with degradation; s1, s5, s6, s10, s16, s18, s19 are
# (near) constant within an operating condition and are dropped in most published work.
CMAPSS_SENSORS = ["s2", "s3", "s4", "s7", "s8", "s9", "s11", "s12", "s13", "s14", "s15", "s17", "s20", "s21"]


@dataclass(frozen=True)
class WindowSpec:
    """How to cut one dataset into windows. Unset fields keep the dataset kind's defaults."""

    name: str
    kind: str  # "runs" or "waveforms"
    length: int
    stride: int = 1
    features: tuple[str, ...] = ()
    label: str | None = None
    label_cap: float | None = None
    domain: str = "plant"
    normalize: str = "group"  # "group" (per row group, fitted on train rows), "window", or "none"
    row_group: str | None = None  # how rows are grouped for normalization: "operating_condition" or a column
    classes: tuple[str, ...] = ()


WINDOW_SPECS: dict[str, WindowSpec] = {
    "cmapss": WindowSpec("cmapss", "runs", length=30, features=tuple(CMAPSS_SENSORS), label="rul", label_cap=125,
                         domain="plant", row_group="operating_condition"),
    "cmapss_uda": WindowSpec("cmapss_uda", "runs", length=30, features=tuple(CMAPSS_SENSORS), label="rul",
                             label_cap=130, domain="plant", row_group="operating_condition"),
    "cwru": WindowSpec("cwru", "waveforms", length=1024, stride=1024, label="label_id", domain="load_hp",
                       normalize="window",
                       classes=("normal", "IR007", "B007", "OR007@6", "IR014", "B014", "OR014@6", "IR021", "B021",
                                "OR021@6")),
}


# Image input presets for ``images`` datasets (``data.spec``); options override any field.
# NOTE: 0.5/0.5 is the normalization EfficientNet-Lite was trained with (TF: (x - 127) / 128).
IMAGE_SPECS: dict[str, ImageInput] = {
    "image": ImageInput(),
    "neu": ImageInput(size=(224, 224), channels=3, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
}


# What a spec written in full takes when a field is left out (or cleared with null).
_KIND_DEFAULTS = {"runs": {"normalize": "group", "stride": 1},
                  "waveforms": {"normalize": "window", "label": "label", "domain": "plant", "stride": None}}
SERIES_KINDS = ("runs", "waveforms")


# Text input presets for ``text`` datasets: MiniLM-L6's tokenizer, shipped offline.
TEXT_SPECS: dict[str, TextInput] = {"text": TextInput()}


def get_data_spec(name: str | dict, **overrides) -> WindowSpec | ImageInput | TextInput:
    """The data spec named ``name`` (a window spec for runs or waveforms, an image or a text input preset),
    or written in full as a mapping with a ``kind`` (``{kind: waveforms, length: 2048, ...}``),
    with ``overrides`` applied; an override of ``None`` clears the field to its kind's default."""
    if isinstance(name, dict):
        fields = dict(name)
        kind = fields.pop("kind", None)
        if kind == "images":
            return _input_spec(ImageInput(), {**fields, **overrides}, "a written image spec")
        if kind == "text":
            return _input_spec(TextInput(), {**fields, **overrides}, "a written text spec")
        if kind not in SERIES_KINDS:
            raise ValueError(f"a data spec written in full needs kind: runs, waveforms, images or text (got {kind!r})")
        if fields.get("length") is None and overrides.get("length") is None:
            raise TypeError(f"a {kind} spec needs length (samples per window)")
        base = WindowSpec(name="custom", kind=kind, length=0, **_KIND_DEFAULTS[kind])  # stride None: = length
        return _window_spec(base, {**fields, **overrides})
    if name in IMAGE_SPECS:
        return _input_spec(IMAGE_SPECS[name], overrides, f"image spec {name!r}")
    if name in TEXT_SPECS:
        return _input_spec(TEXT_SPECS[name], overrides, f"text spec {name!r}")
    if name not in WINDOW_SPECS:
        known = ", ".join([*WINDOW_SPECS, *IMAGE_SPECS, *TEXT_SPECS])
        raise ValueError(f"unknown data spec {name!r}; known: {known}, or a spec written in full "
                         "({kind: waveforms, length: ...})")
    return get_window_spec(name, **overrides)


def _input_spec(base, overrides: dict, what: str):
    """An image or text input spec ``base`` with ``overrides`` (``None`` clears to the default)."""
    cls = type(base)
    unknown = sorted(set(overrides) - set(cls.__dataclass_fields__))
    if unknown:
        raise TypeError(f"{what} has no option(s) {unknown}; it takes {', '.join(cls.__dataclass_fields__)}")
    default = cls()
    fields = {k: (getattr(default, k) if v is None else tuple(v) if isinstance(v, list) else v)
              for k, v in overrides.items()}
    return replace(base, **fields)


def _window_spec(base: WindowSpec, overrides: dict) -> WindowSpec:
    fields = WindowSpec.__dataclass_fields__
    unknown = sorted(set(overrides) - set(fields) - {"name"})
    if unknown:
        raise TypeError(f"window spec {base.name!r} has no option(s) {unknown}; it takes "
                        f"{', '.join(f for f in fields if f not in ('name', 'kind'))}")
    if "kind" in overrides and overrides["kind"] != base.kind:
        raise TypeError(f"window spec {base.name!r} is for {base.kind}; write a spec in full for another kind")
    cleared = {**{k: f.default for k, f in fields.items() if k not in ("name", "kind", "length")},
               **_KIND_DEFAULTS[base.kind]}
    out = {}
    for key, value in overrides.items():
        if key in ("name", "kind"):
            continue
        if value is None:
            value = cleared.get(key)
        out[key] = tuple(value) if isinstance(value, list) else value
    spec = replace(base, **out)
    return replace(spec, stride=spec.length) if spec.stride is None else spec


def get_window_spec(name: str, **overrides) -> WindowSpec:
    """The named spec with ``overrides`` applied (``None`` clears a field to its kind's default)."""
    try:
        spec = WINDOW_SPECS[name]
    except KeyError:
        raise ValueError(f"unknown window spec {name!r}; known: {', '.join(WINDOW_SPECS)}") from None
    return _window_spec(spec, overrides)


def dataset_channels(catalog: Catalog, dataset: str) -> list[str] | None:
    """A waveforms dataset's channel names (its manifest's), ``None`` for one unnamed channel."""
    return (catalog.manifest(dataset).extra or {}).get("channels") or None


def run_classes(catalog: Catalog, dataset: str, spec: WindowSpec | ImageInput) -> list[str] | None:
    """The class names a run uses, in id order: the spec's, else the dataset's (its manifest's, or
    the sorted values of a text label column over the whole dataset, so that every split and
    domain of a run numbers classes alike).

    A spec whose classes differ from the dataset's is an error naming both lists.
    """
    stored = list((catalog.manifest(dataset).extra or {}).get("classes") or [])
    own = list(getattr(spec, "classes", ()) or [])
    if own and stored and own != stored:
        raise ValueError(f"the spec's classes {own} differ from dataset {dataset!r}'s {stored}; clear the spec's "
                         "(data.spec_options.classes=null) to take the dataset's")
    if own or stored or not isinstance(spec, WindowSpec) or not spec.label:
        return own or stored or None
    schema = catalog.schema(dataset)
    if spec.label not in schema.names:
        return None  # reported by the reader, with the dataset's columns
    typ = schema.field(spec.label).type
    if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        return None  # numeric: a regression target, or class ids
    column = catalog.read(dataset, columns=[spec.label]).column(spec.label)
    return sorted(v for v in pc.unique(column).to_pylist() if v is not None) or None


def series_input(spec: WindowSpec, channels: int, window: int, normalizer: dict | None = None,
                 signals: list[str] | None = None) -> SeriesInput:
    """The model-input spec of windows cut by ``spec`` (``normalizer``: fitted group statistics;
    ``signals``: channel names where the spec does not list them)."""
    group = spec.normalize == "group"
    return SeriesInput(channels=channels, window=window, signals=tuple(spec.features or signals or ("values",)),
                       normalize=spec.normalize, group_by=spec.row_group if group else None,
                       normalizer=normalizer if group else None)


def operating_condition(table: pa.Table) -> pa.Array:
    """C-MAPSS operating condition of each row: altitude setting rounded (0, 10, 20, 25, 35, 42 kft).

    FD001/FD003 run at condition 0 only; FD002/FD004 visit all six. The rounded ``setting_1``
    separates the six cleanly, with the same code for the sea-level condition in every subset.
    """
    return pc.cast(pc.round(table.column("setting_1")), pa.int64())


def load_windows(catalog: Catalog, dataset: str, spec: WindowSpec | str, *, split: str | None = None,
                 domains: list[str] | None = None, last_only: bool = False,
                 classes: list[str] | None = None, times: bool = False) -> Windows:
    """Reads ``dataset`` (optionally one split and some domains) and cuts it by ``spec``.

    Only the columns the spec needs are read (and with ``times`` its rows' times, column ``ts``, to
    join the windows with images or texts by time). Class ids follow ``classes``, else the spec's or
    the dataset's class list.
    """
    spec = get_window_spec(spec) if isinstance(spec, str) else spec
    columns = spec_columns(spec)
    schema = catalog.schema(dataset)
    if times:
        if spec.kind != "runs" or "ts" not in schema.names:
            raise ValueError(f"dataset {dataset!r} has no row times (a ts column) to join by; runs ingested from a "
                             "historian export with a time column, or pivoted from a capture, have them")
        columns = [*columns, "ts"]
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise ValueError(f"dataset {dataset!r} has no column(s) {missing} that the data spec names; it has "
                         f"{', '.join(schema.names)}")
    table = catalog.read(dataset, split=split, columns=columns, filter=domain_filter(spec, domains))
    table = domain_rows(table, spec, domains)
    if table.num_rows == 0:
        raise ValueError(f"no rows in {dataset!r} for split {split!r} and domains {domains}")
    return table_windows(table, spec, last_only=last_only, classes=classes or run_classes(catalog, dataset, spec),
                         channels=dataset_channels(catalog, dataset) if spec.kind == "waveforms" else None,
                         times="ts" if times else None)


def spec_columns(spec: WindowSpec) -> list[str]:
    """The columns cutting windows by ``spec`` needs."""
    if spec.kind == "runs":
        extra = ["setting_1"] if spec.row_group == "operating_condition" else (
            [spec.row_group] if spec.row_group else [])
        return sorted({"plant", "asset", "step", spec.domain, *spec.features, *extra,
                       *([spec.label] if spec.label else [])})
    return sorted({"plant", "asset", "values", spec.label, spec.domain})


def domain_filter(spec: WindowSpec, domains: list[str] | None) -> pc.Expression | None:
    """A pushed-down row filter for ``domains`` (runs only: waveform domains are filtered after reading)."""
    return pc.field(spec.domain).isin(domains) if domains and spec.kind == "runs" else None


def domain_rows(table: pa.Table, spec: WindowSpec, domains: list[str] | None) -> pa.Table:
    """Waveform rows of ``domains`` (runs are filtered while reading, see :func:`domain_filter`)."""
    if not domains or spec.kind == "runs":
        return table
    return table.filter(pc.is_in(pc.cast(table.column(spec.domain), pa.string()), pa.array([str(d) for d in domains])))


def row_group_codes(table: pa.Table, spec: WindowSpec) -> pa.Array | None:
    """Each row's normalization group under ``spec`` (``None`` without groups)."""
    if spec.row_group == "operating_condition":
        return operating_condition(table)
    if spec.row_group:
        return pc.cast(table.column(spec.row_group), pa.int64())
    return None


def table_windows(table: pa.Table, spec: WindowSpec, *, last_only: bool = False,
                  classes: list[str] | None = None, channels: list[str] | None = None,
                  times: str | None = None) -> Windows:
    """Cuts an already-read table (columns of :func:`spec_columns`) into windows by ``spec``
    (``channels``: a waveforms dataset's channel names; ``times``: a runs table's timestamp column)."""
    classes = classes or list(spec.classes) or None
    if spec.kind == "waveforms":
        return waveform_windows(table, length=spec.length, stride=spec.stride, label=spec.label, domain=spec.domain,
                                classes=classes, per_window_norm=spec.normalize == "window", channels=channels,
                                features=list(spec.features) or None)
    groups = row_group_codes(table, spec)
    if groups is not None:
        table = table.append_column("_group", groups)
    return run_windows(table, features=list(spec.features), length=spec.length, stride=spec.stride,
                       label=spec.label, label_cap=spec.label_cap, domain=spec.domain, last_only=last_only,
                       classes=classes, row_group="_group" if groups is not None else None,
                       per_window_norm=spec.normalize == "window", times=times)


def split_by_asset(windows: Windows, fractions: dict[str, float], seed: int = 0) -> dict[str, Windows]:
    """Splits windows so that each asset lands in exactly one split (shuffled by ``seed``)."""
    return {name: windows.subset(np.isin(windows.assets, chosen))
            for name, chosen in deal_assets(np.unique(windows.assets), fractions, seed).items()}


def deal_assets(assets: np.ndarray, fractions: dict[str, float], seed: int = 0) -> dict[str, np.ndarray]:
    """Sorted unique ``assets`` shuffled by ``seed`` and cut into consecutive shares by ``fractions``."""
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    assets = assets.copy()
    np.random.default_rng(seed).shuffle(assets)
    cuts = np.round(np.cumsum(list(fractions.values())) * len(assets)).astype(int)
    return {name: assets[lo:hi] for name, lo, hi in zip(fractions, [0, *cuts[:-1]], cuts)}


def split_windows(windows: Windows, fraction: float, seed: int = 0) -> tuple[Windows, Windows]:
    """Deals each asset's windows at random (``seed``): ``fraction`` of them, rounded, to the first
    part, the rest to the second. Overlapping windows (stride below length) share samples across
    the parts; with stride = length they do not."""
    rng = np.random.default_rng(seed)
    first = np.zeros(len(windows), bool)
    for a in np.unique(windows.assets):
        mine = np.flatnonzero(windows.assets == a)
        first[rng.permutation(mine)[:int(round(fraction * len(mine)))]] = True
    return windows.subset(first), windows.subset(~first)


def split_by_time(windows: Windows, fraction: float) -> tuple[Windows, Windows]:
    """Splits each asset's signal at ``fraction`` of its length: earlier windows vs later ones.

    Windows that straddle the cut are dropped, so the two sides never share a sample.
    """
    asset_end = np.zeros_like(windows.asset_starts)
    for a in np.unique(windows.assets):  # the last window end of each asset bounds its signal
        mask = windows.assets == a
        asset_end[mask] = windows.ends[mask].max()
    cut = windows.asset_starts + (fraction * (asset_end - windows.asset_starts)).astype(np.int64)
    early = windows.ends <= cut
    late = windows.ends - windows.length >= cut
    return windows.subset(early), windows.subset(late)
