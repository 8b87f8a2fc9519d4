"""Text samples from a ``text`` catalog dataset: documents with their labels (one class each, or a
set of labels each), domains and assets, tokenized per batch by the input spec's preprocessing
(the one serving uses)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog import Catalog
from .batch import SampleBatches
from .images import domain_ids
from .inputs import TextInput
from .windows import event_keys

COLUMNS = ["plant", "asset", "ts", "doc_id", "text", "labels"]


@dataclass
class TextSamples(SampleBatches):
    """Texts with one entry per sample in every per-sample array.

    ``labels`` are class ids ``[N]`` (each text has one label) or, with ``multi_label``, multi-hot
    float32 ``[N, n_classes]``. Offers what training needs of :class:`~transferline.data.Windows`.
    """

    texts: list[str]
    labels: np.ndarray
    domains: np.ndarray  # int64 [N], index into domain_names
    assets: np.ndarray  # int64 [N]: each text is its own unit
    spec: TextInput
    classes: list[str] = field(default_factory=list)
    domain_names: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # doc id of each text
    multi_label: bool = False
    units: np.ndarray | None = None  # object [N]: the plant/asset each text is about
    times: np.ndarray | None = None  # int64 [N]: when it was written (µs since the epoch, UTC; NO_TIME: unknown)
    modality = "text"
    dtype = np.int64  # token ids

    def __post_init__(self) -> None:
        self._preprocess = None

    @property
    def preprocess(self):
        if self._preprocess is None:  # the tokenizer loads once, on first use
            from .preprocess import TextPreprocess

            self._preprocess = TextPreprocess(self.spec)
        return self._preprocess

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.spec.max_length,)

    def get(self, index) -> np.ndarray:
        """Token ids ``[B, max_length]`` of the texts at ``index``."""
        index = np.atleast_1d(np.asarray(index))
        return self.preprocess([self.texts[int(i)] for i in index])

    def subset(self, mask) -> "TextSamples":
        index = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        out = replace(self, texts=[self.texts[i] for i in index], labels=self.labels[index],
                      domains=self.domains[index], assets=self.assets[index],
                      names=[self.names[i] for i in index] if self.names else [],
                      units=self.units[index] if self.units is not None else None,
                      times=self.times[index] if self.times is not None else None)
        out._preprocess = self._preprocess
        return out


def load_texts(catalog: Catalog, dataset: str, spec: TextInput, *, split: str | None = None,
               domains: list[str] | None = None, classes: list[str] | None = None,
               domain: str = "plant", labelled: bool = True) -> TextSamples:
    """Reads a ``text`` dataset (optionally one split and some domains) as :class:`TextSamples`.

    Class ids follow ``classes`` if given, else the dataset's labels sorted; texts with exactly one
    label each make a multi-class set, anything else (none, several) a multi-label one. A label
    outside ``classes`` is an error naming it. With ``labelled=False`` labels are not read (every
    text class 0 of none: notes joined to another input's events, which carry the labels).
    """
    table = catalog.read(dataset, split=split, columns=COLUMNS)
    if domains:
        table = table.filter(pc.is_in(table.column(domain), pa.array([str(d) for d in domains])))
    if table.num_rows == 0:
        raise ValueError(f"no texts in {dataset!r} for split {split!r} and domains {domains}")
    domain_names, domain_codes = domain_ids(table.column(domain))
    units, times = event_keys(table)
    if labelled:
        everything, multi = dataset_labels(catalog, dataset)  # so every split and domain numbers classes alike
        classes = list(classes or everything)
        labels = label_targets(table.column("labels").to_pylist(), classes, multi, dataset)
    else:
        classes, multi, labels = [], False, np.zeros(table.num_rows, np.int64)
    return TextSamples(texts=table.column("text").to_pylist(), labels=labels,
                       domains=domain_codes, assets=np.arange(table.num_rows, dtype=np.int64),
                       spec=spec, classes=classes, domain_names=domain_names,
                       names=table.column("doc_id").to_pylist(), multi_label=multi, units=units, times=times)


def label_targets(label_sets: list, classes: list[str], multi: bool, dataset: str) -> np.ndarray:
    """Each text's labels as a class id (int64 ``[N]``) or, ``multi``, multi-hot (float32 ``[N, K]``);
    a label outside ``classes`` is an error naming it."""
    found = sorted({lab for labs in label_sets for lab in labs or []})
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ValueError(f"{dataset!r} has texts labelled {unknown}, outside the class list {classes}")
    lookup = {c: i for i, c in enumerate(classes)}
    if not multi:
        return np.array([lookup[labs[0]] for labs in label_sets], np.int64)
    labels = np.zeros((len(label_sets), len(classes)), np.float32)
    for i, labs in enumerate(label_sets):
        labels[i, [lookup[lab] for lab in labs or []]] = 1.0
    return labels


def dataset_labels(catalog: Catalog, dataset: str) -> tuple[list[str], bool]:
    """A text dataset's labels, sorted, and whether it is multi-label (a text with none or several)."""
    sets = catalog.read(dataset, columns=["labels"]).column("labels").to_pylist()
    found = sorted({lab for labs in sets for lab in labs or []})
    if not found:
        raise ValueError(f"{dataset!r} has no labels: ingest it with --label-col to train a classifier")
    return found, any(len(labs or []) != 1 for labs in sets)
