"""Tagging texts streamed from the catalog through Ray Data (``tag fit --workers N --stream``).

The driver makes one pass over the dataset's ``spans`` column, file by file: the tag set (the
whole dataset's, as in memory) and each file's row count. Texts are numbered in the order the
in-memory path reads them, so :func:`~.spans.tag_split` draws the same training, validation and
test texts. The training texts are dealt into read tasks of at most ``texts_per_task`` rows of one
file; each task reads only the Parquet row groups holding its rows, tags their words BIO and
tokenizes them (the ``WordTokens`` of training in memory, padded to the spec's max length), and
yields them in shuffled blocks. Each Ray Train worker iterates its own shard of them; the
validation and test texts (a tenth each by default) are read by the driver alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..data.sample_stream import ShardStream
from .spans import TaggedTexts, WordTokens, cut, outermost, tag_set, tag_split, tag_targets, tagged


@dataclass
class TagPlan:
    """What the driver works out once to stream a tagging dataset; cheap to send."""

    files: list[str]
    file_of: np.ndarray  # int64 [N]: index into files, texts in read order
    row_of: np.ndarray  # int64 [N]: row in that file
    tag_names: list[str]
    depth: int
    split: dict[str, np.ndarray]  # "train", "val", "test" → text numbers

    def texts(self, part: str) -> TaggedTexts:
        """The ``part`` texts read into memory (validation and test)."""
        from ..data.sample_stream import read_numbers

        table = read_numbers(self.files, self.file_of, self.row_of, self.split[part], ["doc_id", "text", "spans"])
        return tagged(table.column("text").to_pylist(), table.column("spans").to_pylist(),
                      table.column("doc_id").to_pylist(), self.tag_names, self.depth)

    def tasks(self, part: str = "train", texts_per_task: int = 256) -> list[dict]:
        from ..data.sample_stream import row_tasks

        return row_tasks(self.files, self.file_of, self.row_of, self.split[part], texts_per_task)

    def dataset(self, spec, *, seed: int, texts_per_task: int = 256, block: int = 64, num_cpus: float = 1):
        """A lazy Ray Dataset of the training texts as ``{"ids" [L], "first" [L], "targets" [L]}`` rows."""
        import ray.data

        items = self.tasks("train", texts_per_task)
        return ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
            read_task, batch_size=1, num_cpus=num_cpus,
            fn_kwargs={"spec": spec, "tag_names": self.tag_names, "depth": self.depth, "seed": seed, "block": block})


def plan_tagging(catalog, dataset: str, depth: int, *, holdout: float, val_fraction: float,
                 split_seed: int) -> TagPlan:
    """Indexes ``dataset`` (one pass over its spans column) and draws the in-memory path's split."""
    import pyarrow.parquet as pq

    from ..errors import TransferlineError

    files = [str(f) for f in catalog.files(dataset)]
    file_of, types = [], set()
    for i, path in enumerate(files):
        if "spans" not in pq.read_schema(path).names:
            raise TransferlineError(f"{dataset!r} has no entity spans: tagging needs a text dataset ingested with "
                                    "them (e.g. maintie)")
        spans = pq.read_table(path, columns=["spans"]).column("spans").to_pylist()
        types.update(cut(s["label"], depth) for row in spans for s in outermost(row or []))
        file_of.append(np.full(len(spans), i, np.int64))
    file_of = np.concatenate(file_of) if file_of else np.zeros(0, np.int64)
    row_of = np.concatenate([np.arange((file_of == i).sum(), dtype=np.int64) for i in range(len(files))]) \
        if files else np.zeros(0, np.int64)
    if len(file_of) < 3:
        raise TransferlineError(f"{dataset!r}: {len(file_of)} text(s); tagging needs training, validation and "
                                "test texts")
    return TagPlan(files, file_of, row_of, tag_set(sorted(types)), depth,
                   tag_split(len(file_of), holdout, val_fraction, split_seed))


_TOKENS: dict[str, WordTokens] = {}


def encode(data: TaggedTexts, tokens: WordTokens) -> dict[str, np.ndarray]:
    """Token ids, each word's first token and its tag id, all ``[B, max_length]`` (a word past
    ``max_length`` tokens has none: its column is cut; -1 and ``IGNORE`` fill)."""
    width = tokens.spec.max_length
    ids, first = tokens([data.words(i) for i in range(len(data))])
    first = np.pad(first, ((0, 0), (0, max(0, width - first.shape[1]))), constant_values=-1)[:, :width]
    return {"ids": ids, "first": first, "targets": tag_targets(data, first)}


def read_task(batch: dict, *, spec, tag_names: list[str], depth: int, seed: int, block: int) -> Iterator[dict]:
    """Ray Data map: one read task's rows → shuffled blocks of encoded training texts."""
    from ..data.sample_stream import read_rows

    task, path = int(batch["task"][0]), str(batch["file"][0])
    table = read_rows(path, np.asarray(batch["rows"][0], np.int64), ["doc_id", "text", "spans"])
    data = tagged(table.column("text").to_pylist(), table.column("spans").to_pylist(),
                  table.column("doc_id").to_pylist(), tag_names, depth)
    key = repr(spec)
    if key not in _TOKENS:  # a tokenizer loads once per read process
        _TOKENS[key] = WordTokens(spec, pad_to_max=True)
    encoded = encode(data, _TOKENS[key])
    order = np.random.default_rng([seed, task]).permutation(len(data))
    for lo in range(0, len(order), block):
        yield {k: v[order[lo:lo + block]] for k, v in encoded.items()}


class TagStream(ShardStream):
    """A Ray Train worker's shard of the streamed training texts (see :class:`ShardStream`), with
    the run's tag set."""

    def __init__(self, shard, n: int, tag_names: list[str], shuffle_buffer: int = 512) -> None:
        super().__init__(shard, n, shuffle_buffer)
        self.tag_names = list(tag_names)
