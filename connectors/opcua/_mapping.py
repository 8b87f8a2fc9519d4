"""How an OPC UA variable's browse path becomes (plant, split, asset, signal) in the catalog."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from transferline.errors import DataError

# Each part is an index into the browse path below the browse root ("-1" is the variable itself),
# or a slice "a:b" whose components are joined with "/".
DEFAULT_MAPPING = "plant=0,asset=1:-1,signal=-1"


@dataclass(frozen=True)
class Variable:
    """One captured variable: its node id, browse path below the root, and catalog coordinates."""

    node_id: str
    path: tuple[str, ...]
    plant: str
    split: str
    asset: str
    signal: str

    @property
    def name(self) -> str:
        return "/".join(self.path)


@dataclass(frozen=True)
class PathMapping:
    """Maps a browse path to catalog coordinates, e.g. ``plant=0,split=1,asset=2,signal=3``.

    Parts not given come from defaults: ``plant`` from ``--plant`` (else path index 0), ``split``
    from ``--split``, ``asset`` from the components between plant and signal, ``signal`` from the
    last component.
    """

    parts: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str | None) -> "PathMapping":
        merged = dict(_split_pairs(DEFAULT_MAPPING))
        merged.update(_split_pairs(text or ""))
        for key, spec in merged.items():
            if key not in ("plant", "split", "asset", "signal"):
                raise ValueError(f"--map: unknown part {key!r}; use plant, split, asset, signal")
            _parse_index(spec)
        return cls(tuple(sorted(merged.items())))

    def apply(self, node_id: str, path: tuple[str, ...], *, plant: str | None, split: str) -> Variable:
        """Returns the variable's coordinates; raises DataError naming the node when the path is too short."""
        out = {"plant": plant, "split": split}
        for key, spec in self.parts:
            if key == "plant" and plant is not None:
                continue
            picked = _pick(path, spec)
            if not picked:
                raise DataError(f"browse path {'/'.join(path)!r} has no component {spec} for {key} "
                                f"(mapping {self.text})", node=node_id)
            out[key] = picked
        return Variable(node_id, path, out["plant"], out["split"], out["asset"], out["signal"])

    @property
    def text(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.parts)


def matches(path: tuple[str, ...], include: list[str]) -> bool:
    """True when no patterns are given or the slash-joined path matches one of them (fnmatch)."""
    name = "/".join(path)
    return not include or any(fnmatch.fnmatchcase(name, pattern) for pattern in include)


def _split_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--map: expected key=index, got {item!r}")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _parse_index(spec: str) -> slice | int:
    try:
        if ":" in spec:
            lo, hi = spec.split(":")
            return slice(int(lo) if lo else None, int(hi) if hi else None)
        return int(spec)
    except ValueError:
        raise ValueError(f"--map: {spec!r} is not an index or a slice like 1:-1") from None


def _pick(path: tuple[str, ...], spec: str) -> str:
    index = _parse_index(spec)
    if isinstance(index, slice):
        return "/".join(path[index])
    return path[index] if -len(path) <= index < len(path) else ""
