"""Recordings from any lab: one file per recording, labels and domains from the file name or a manifest.

Each recording becomes one row of a ``waveforms`` dataset. Several channels of one recording
(drive-end and fan-end accelerometers, the two channels of a stereo ``.wav``) are kept together,
channel-major in ``values``, and named in the manifest (``extra.channels``); the class list is
stored there too (``extra.classes``), so training takes its class ids from the catalog.

Formats: ``.mat`` (MATLAB v4-v7), ``.npy``, ``.npz``, ``.wav``, ``.csv``, ``.parquet``.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from transferline.catalog import IngestPlan, Part
from transferline.errors import DataError, shorten

from ._common import digest, manifest_rows, require_dir

SUFFIXES = {".mat", ".npy", ".npz", ".wav", ".csv", ".parquet"}
# keys a file may carry its sample rate under (.mat, .npz)
RATE_KEYS = ("sample_rate", "sampling_rate", "fs", "Fs", "sr")
RESERVED = {"split", "plant", "asset", "segment", "sample_rate", "label", "values"}


@dataclass
class Recording:
    """One file to read: its label, split, asset and further fields (domain columns)."""

    path: Path
    label: str
    asset: str
    split: str = "all"
    fields: dict = field(default_factory=dict)  # column -> value, typed by the plan's field types
    sample_rate: float | None = None  # from the manifest or the reader; else the file's or --sample-rate
    keys: list[str] | None = None  # arrays or columns to read, one channel each (glob patterns)
    rows_are_time: bool = False  # a 2-D array whose rows, in order, are consecutive pieces of one signal
    channel_names: list[str] | None = None  # default: from the key patterns, column names, or signal / ch<i>


def read_waveforms(src: str | Path, *, pattern: str | None = None, manifest: str | None = None,
                   key: str | None = None, sample_rate: str | float | None = None, classes: list[str] | None = None,
                   plant: str = "default") -> IngestPlan:
    """Plans the ingest of one recording per file under ``src``.

    Args:
        src: folder of recordings (searched recursively).
        pattern: how file names carry labels and domains, e.g. ``{label}_{speed}rpm_*.npy``; ``{name}``
            captures a field (``label`` the class, ``split`` and ``asset`` their columns, any other name
            a domain column), ``*`` matches anything. Without a ``/`` it matches the file name,
            with one the path under ``src``.
        manifest: CSV (relative to ``src``) with columns ``path`` and ``label`` and optionally ``split``,
            ``asset``, ``sample_rate``; every other column becomes a domain column.
        key: which arrays (``.mat``, ``.npz``) or columns (``.csv``, ``.parquet``) to read, as
            comma-separated glob patterns, one channel each (``*_DE_time,*_FE_time``); default: the
            file's only array, or every numeric column.
        sample_rate: samples per second, required unless the manifest or the files carry it.
        classes: class names in id order (default: the labels found, sorted).
        plant: plant recorded for every recording.
    """
    src = require_dir(Path(src), "recordings")
    if bool(pattern) == bool(manifest):
        raise DataError("give --pattern (labels from file names) or --manifest (a CSV listing the files), "
                        "one of the two", file=str(src))
    rate = _rate(sample_rate)
    keys = [k.strip() for k in key.split(",") if k.strip()] if key else None
    recordings, unmatched = (_from_pattern(src, pattern, keys) if pattern else _from_manifest(src, Path(manifest), keys))
    if not recordings:
        found = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())[:5]
        raise DataError(f"no file matches the pattern {pattern!r} (files here: {', '.join(found) or 'none'})",
                        file=str(src))
    plan = plan_waveforms(src, recordings, reader="waveforms", classes=classes, sample_rate=rate, plant=plant,
                          options={"key": key, "sample_rate": rate, "pattern": pattern, "manifest": manifest})
    if unmatched:
        plan.summary += (f"\n  skipped {len(unmatched)} file(s) the pattern does not match, e.g. "
                         f"{', '.join(unmatched[:3])}")
    return plan


def plan_waveforms(src: Path, recordings: list[Recording], *, reader: str, classes: list[str] | None = None,
                   sample_rate: float | None = None, plant: str = "default", options: dict | None = None,
                   field_types: dict[str, pa.DataType] | None = None,
                   part_digest: Callable[[Recording], str] | None = None, label_id: bool = False) -> IngestPlan:
    """One part per recording. Field columns are typed by ``field_types``, else int64 where every
    value is an integer, else text. ``label_id`` adds the class id column (fixed class lists only)."""
    labels = Counter(r.label for r in recordings)
    if classes:
        unknown = sorted(set(labels) - set(classes))
        if unknown:
            bad = next(r for r in recordings if r.label in unknown)
            raise DataError(f"label(s) {unknown} are not in the class list {list(classes)}", file=str(bad.path),
                            field="label")
    classes = list(classes or sorted(labels))
    names = sorted({k for r in recordings for k in r.fields})
    for r in recordings:
        missing = [n for n in names if n not in r.fields]
        if missing:
            raise DataError(f"no value for {missing}", file=str(r.path), field=missing[0])
    types = {n: (field_types or {}).get(n) or _field_type([r.fields[n] for r in recordings]) for n in names}
    seen: dict[tuple, Path] = {}
    for r in recordings:
        if (r.split, r.asset) in seen:
            raise DataError(f"two recordings share asset {r.asset!r} (also {seen[(r.split, r.asset)]}); name "
                            "assets apart with {asset} in the pattern or an asset column", file=str(r.path))
        seen[(r.split, r.asset)] = r.path
    first = load_recording(recordings[0], sample_rate)  # channels and sample rate are checked here, before writing
    channels = first[2]
    options = {"reader": reader, **(options or {})}
    parts = [Part(key=str(r.path.relative_to(src)) if r.path.is_relative_to(src) else str(r.path),
                  digest=part_digest(r) if part_digest else digest([r.path], **options, label=r.label,
                                                                   fields=r.fields, split=r.split, asset=r.asset),
                  file=str(r.path), load=_loader(r, sample_rate, plant, channels, types, classes if label_id else None))
             for r in recordings]
    domains = [n for n in names if n != "label_id"]
    plan = IngestPlan(kind="waveforms", reader=reader, source=str(src), parts=parts,
                      roles={"id": ["plant", "asset"], "labels": ["label", *(["label_id"] if label_id else [])],
                             "domain": domains},
                      domain_columns=domains[:1], extra={"classes": classes, "channels": channels})
    plan.summary = _summary(recordings, labels, classes, domains, channels, first[1])
    return plan


def _summary(recordings, labels: Counter, classes, domains, channels, rate) -> str:
    lines = [f"found {len(recordings)} recording(s), {len(channels)} channel(s) ({', '.join(channels)}), "
             f"first at {rate:g} Hz",
             f"  classes  {', '.join(f'{c} {labels.get(c, 0)}' for c in classes)}"]
    for name in domains:
        values = Counter(str(r.fields[name]) for r in recordings)
        lines.append(f"  {name:8s} {', '.join(f'{v} {n}' for v, n in sorted(values.items()))}")
    splits = Counter(r.split for r in recordings)
    if set(splits) != {"all"}:
        lines.append(f"  splits   {', '.join(f'{s} {n}' for s, n in sorted(splits.items()))}")
    return "\n".join(lines)


def _rate(value) -> float | None:
    if value is None:
        return None
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = float("nan")
    if not np.isfinite(rate) or rate <= 0:
        raise DataError(f"--sample-rate must be a positive number of samples per second, not {shorten(value)}")
    return rate


def _field_type(values: list) -> pa.DataType:
    return pa.int64() if all(isinstance(v, int) or (isinstance(v, str) and re.fullmatch(r"-?\d+", v))
                             for v in values) else pa.string()


def pattern_regex(pattern: str) -> re.Pattern:
    """``{name}`` → a named group (no ``/``), ``*`` → anything but ``/``; the rest literal."""
    out, pos = [], 0
    for m in re.finditer(r"\{([A-Za-z_][A-Za-z0-9_]*)\}|\*", pattern):
        out.append(re.escape(pattern[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>[^/]+?)" if m.group(1) else "[^/]*")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    try:
        return re.compile("".join(out))
    except re.error as exc:  # a field named twice
        raise DataError(f"bad --pattern {pattern!r} ({exc}); name each field once") from None


def _from_pattern(src: Path, pattern: str, keys: list[str] | None) -> tuple[list[Recording], list[str]]:
    regex = pattern_regex(pattern)
    if "label" not in regex.groupindex:
        raise DataError(f"--pattern {pattern!r} has no {{label}} field: the class of each recording must come "
                        "from its name (or use --manifest)")
    bad = sorted(set(regex.groupindex) & {"plant", "segment", "sample_rate", "values"})
    if bad:
        raise DataError(f"--pattern field(s) {bad} are set by the reader; name them otherwise")
    out, unmatched = [], []
    for path in sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = path.relative_to(src).as_posix()
        m = regex.fullmatch(rel if "/" in pattern else path.name)
        if m is None or path.suffix.lower() not in SUFFIXES:
            if path.suffix.lower() in SUFFIXES:
                unmatched.append(rel)
            continue
        found = m.groupdict()
        out.append(Recording(path=path, label=found.pop("label"), split=found.pop("split", "all"),
                             asset=found.pop("asset", None) or rel.rsplit(".", 1)[0], fields=found, keys=keys))
    return out, unmatched


def _from_manifest(src: Path, manifest: Path, keys: list[str] | None) -> tuple[list[Recording], list[str]]:
    manifest, columns, rows = manifest_rows(src, manifest, "recording")
    extra = [c for c in columns if c not in ("path", "label", "split", "asset", "sample_rate")]
    clash = sorted(set(extra) & RESERVED)
    if clash:
        raise DataError(f"manifest column(s) {clash} are set by the reader; rename them", file=str(manifest),
                        field=clash[0])
    out = []
    for lineno, row, path in rows:
        if path.suffix.lower() not in SUFFIXES:
            raise DataError(f"unsupported file type {path.suffix!r}; readable: {', '.join(sorted(SUFFIXES))}",
                            file=str(manifest), row=lineno, field="path")
        rate = None
        if row.get("sample_rate"):
            try:
                rate = _rate(row["sample_rate"])
            except DataError as exc:
                raise DataError(exc.message, file=str(manifest), row=lineno, field="sample_rate") from None
        empty = [c for c in extra if not row.get(c)]
        if empty:
            raise DataError("empty value", file=str(manifest), row=lineno, field=empty[0])
        out.append(Recording(path=path, label=row["label"], split=row.get("split") or "all",
                             asset=row.get("asset") or row["path"].rsplit(".", 1)[0],
                             fields={c: row[c] for c in extra}, sample_rate=rate, keys=keys))
    return out, []


def _loader(r: Recording, sample_rate, plant, channels, types, classes) -> Callable[[], pa.Table]:
    def load() -> pa.Table:
        signal, rate, names = load_recording(r, sample_rate)
        if names != channels:
            raise DataError(f"channels {names} differ from the first recording's {channels}", file=str(r.path))
        flat = np.ascontiguousarray(signal, dtype=np.float32).reshape(-1)  # channel-major
        columns = {
            "split": [r.split], "plant": [plant], "asset": [str(r.asset)], "segment": pa.array([0], pa.int64()),
            "sample_rate": [rate], "label": [r.label],
            "values": pa.ListArray.from_arrays(pa.array([0, len(flat)], pa.int32()), pa.array(flat)),
        }
        if classes is not None:
            columns["label_id"] = pa.array([classes.index(r.label)], pa.int32())
        for name, typ in types.items():
            columns[name] = pa.array([int(r.fields[name]) if pa.types.is_integer(typ) else r.fields[name]], typ)
        return pa.table(columns)
    return load


def load_recording(r: Recording, sample_rate: float | None = None) -> tuple[np.ndarray, float, list[str]]:
    """``(signal [C, T] float32, sample rate, channel names)`` of one recording."""
    suffix = r.path.suffix.lower()
    reader = {".mat": _read_mat, ".npz": _read_npz, ".npy": _read_npy, ".wav": _read_wav, ".csv": _read_table,
              ".parquet": _read_table}.get(suffix)
    if reader is None:
        raise DataError(f"unsupported file type {suffix!r}; readable: {', '.join(sorted(SUFFIXES))}", file=str(r.path))
    signal, file_rate, names = reader(r)
    if r.channel_names:
        if len(r.channel_names) != len(signal):
            raise DataError(f"{len(signal)} channel(s) found, {len(r.channel_names)} named ({r.channel_names})",
                            file=str(r.path))
        names = list(r.channel_names)
    if signal.ndim != 2 or signal.shape[1] < 2:
        raise DataError(f"expected a signal of at least 2 samples, found shape {list(signal.shape)}", file=str(r.path))
    bad = ~np.isfinite(signal)
    if bad.any():
        c, t = np.argwhere(bad)[0]
        raise DataError(f"NaN or infinite sample at index {int(t)}", file=str(r.path), key=names[c])
    rate = r.sample_rate or file_rate or sample_rate
    if file_rate and sample_rate and abs(file_rate - sample_rate) > 1e-6 * file_rate and not r.sample_rate:
        raise DataError(f"the file says {file_rate:g} Hz but --sample-rate is {sample_rate:g}; drop the option or "
                        "fix the file", file=str(r.path))
    if not rate:
        raise DataError("no sample rate: give --sample-rate, a sample_rate column in the manifest, or a file that "
                        f"carries one ({', '.join(RATE_KEYS)} in .mat/.npz; .wav always does)", file=str(r.path))
    return signal.astype(np.float32, copy=False), float(rate), names


def _channels_of(array: np.ndarray, path: Path, key: str | None = None) -> np.ndarray:
    """A 1-D signal as ``[1, T]``; a 2-D array as ``[C, T]`` (the shorter side is channels)."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise DataError(f"not a real numeric array (dtype {array.dtype})", file=str(path), key=key)
    array = np.squeeze(array)
    if array.ndim == 1:
        return array[None, :].astype(np.float32)
    if array.ndim == 2:
        return (array if array.shape[0] <= array.shape[1] else array.T).astype(np.float32)
    raise DataError(f"expected a 1-D or 2-D array, found shape {list(array.shape)}", file=str(path), key=key)


def _pick(arrays: dict, r: Recording, what: str) -> tuple[np.ndarray, list[str]]:
    """The arrays named by ``r.keys`` (one channel each), or the one array the file has."""
    if r.keys:
        chosen, names = [], []
        for pattern in r.keys:
            hits = sorted(k for k in arrays if fnmatch.fnmatchcase(k, pattern))
            if len(hits) != 1:
                raise DataError(f"{'no' if not hits else 'several'} {what}(s) match {pattern!r}"
                                f"{f' ({hits})' if hits else ''}; the file has {sorted(arrays)}", file=str(r.path),
                                key=pattern)
            if r.rows_are_time:
                chosen.append(np.asarray(arrays[hits[0]]).reshape(1, -1))
            else:
                chosen.append(_channels_of(arrays[hits[0]], r.path, hits[0]))
            names.append(pattern.strip("*_") or hits[0])
        lengths = {c.shape[1] for c in chosen}
        if len(lengths) > 1 or any(c.shape[0] != 1 for c in chosen):
            raise DataError(f"{what}s {r.keys} must each be one channel of the same length", file=str(r.path))
        return np.concatenate(chosen).astype(np.float32), names
    candidates = [k for k, v in arrays.items() if np.size(v) > 1]
    if len(candidates) != 1:
        raise DataError(f"{len(candidates)} {what}s here ({sorted(candidates)}); choose with --key", file=str(r.path))
    if r.rows_are_time:
        return np.asarray(arrays[candidates[0]], np.float32).reshape(1, -1), ["signal"]
    signal = _channels_of(arrays[candidates[0]], r.path, candidates[0])
    return signal, (["signal"] if len(signal) == 1 else [f"ch{i}" for i in range(len(signal))])


def _file_rate(arrays: dict, path: Path) -> float | None:
    for key in RATE_KEYS:
        if key in arrays:
            value = np.asarray(arrays.pop(key)).reshape(-1)
            if value.size != 1 or not np.isfinite(value[0]) or value[0] <= 0:
                raise DataError("sample rate must be one positive number", file=str(path), key=key)
            return float(value[0])
    return None


def _read_mat(r: Recording):
    from scipy.io import loadmat

    try:
        mat = loadmat(r.path)
    except NotImplementedError:
        raise DataError("MATLAB v7.3 (HDF5) files are not read; save with save(..., '-v7') or as .npy",
                        file=str(r.path)) from None
    except Exception as exc:  # scipy raises several types for a damaged file
        raise DataError(f"cannot read MATLAB file ({exc})", file=str(r.path)) from None
    arrays = {k: v for k, v in mat.items() if not k.startswith("__")}
    rate = _file_rate(arrays, r.path)
    signal, names = _pick(arrays, r, "array")
    return signal, rate, names


def _read_npz(r: Recording):
    try:
        with np.load(r.path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # zipfile, ValueError for object arrays
        raise DataError(f"cannot read .npz file ({exc})", file=str(r.path)) from None
    rate = _file_rate(arrays, r.path)
    signal, names = _pick(arrays, r, "array")
    return signal, rate, names


def _read_npy(r: Recording):
    try:
        array = np.load(r.path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"cannot read .npy file ({exc})", file=str(r.path)) from None
    signal = _channels_of(array, r.path)
    return signal, None, (["signal"] if len(signal) == 1 else [f"ch{i}" for i in range(len(signal))])


def _read_wav(r: Recording):
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(r.path)
    except Exception as exc:
        raise DataError(f"cannot read .wav file ({exc})", file=str(r.path)) from None
    if np.issubdtype(data.dtype, np.integer):  # PCM: scale to [-1, 1)
        info = np.iinfo(data.dtype)
        data = (data.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    data = data.reshape(len(data), -1).T  # [C, T]
    names = ["signal"] if len(data) == 1 else [f"ch{i}" for i in range(len(data))]
    return data.astype(np.float32), float(rate), names


def _read_table(r: Recording):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(r.path) if r.path.suffix.lower() == ".parquet" else pacsv.read_csv(r.path)
    except Exception as exc:
        raise DataError(f"cannot read table ({str(exc).splitlines()[0]})", file=str(r.path)) from None
    numeric = {n: table.column(n) for n in table.column_names
               if pa.types.is_integer(table.column(n).type) or pa.types.is_floating(table.column(n).type)}
    if r.keys:
        names = []
        for pattern in r.keys:
            hits = sorted(n for n in table.column_names if fnmatch.fnmatchcase(n, pattern))
            if not hits:
                raise DataError(f"no column matches {pattern!r}; columns: {table.column_names}", file=str(r.path),
                                key=pattern)
            names += [h for h in hits if h not in names]
    else:
        names = list(numeric)
        if not names:
            raise DataError(f"no numeric column (columns: {table.column_names})", file=str(r.path))
    for name in names:
        if name not in numeric:
            raise DataError(f"column is {table.column(name).type}, not numeric", file=str(r.path), field=name)
        if table.column(name).null_count:
            row = int(np.flatnonzero(table.column(name).is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError("empty value", file=str(r.path), row=row + 2 if r.path.suffix == ".csv" else row + 1,
                            field=name)
    signal = np.stack([table.column(n).to_numpy().astype(np.float32) for n in names])
    bad = ~np.isfinite(signal)
    if bad.any():
        c, t = np.argwhere(bad)[0]
        raise DataError("NaN or infinite value", file=str(r.path), row=int(t) + (2 if r.path.suffix == ".csv" else 1),
                        field=names[c])
    return signal, None, names
