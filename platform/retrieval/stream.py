"""(Problem, action) pairs streamed from the catalog through Ray Data (``retrieve fit --workers N --stream``).

The driver makes one pass over the dataset's ``text`` and ``paired_text`` columns, file by file:
the rows with a paired text, numbered in the order the in-memory path reads them, and the split by
distinct problem text that path draws (:meth:`~.pairs.Pairs.split`). The training rows are dealt
into read tasks of at most ``pairs_per_task`` rows of one file; each task reads only the Parquet row
groups holding them, tokenizes both sides with the input spec's preprocessing and yields them in
shuffled blocks with a hash of each side's text (rows sharing a problem or an action are not each
other's negatives). Each Ray Train worker iterates its own shard (a
:class:`~transferline.data.sample_stream.ShardStream`); an epoch there passes over every
training pair (in memory: one pair of each problem). The validation and test pairs are read by the
driver alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .pairs import Pairs


def text_hash(texts: list[str]) -> np.ndarray:
    """A stable int64 per text (equal texts, equal numbers; in every process)."""
    return np.array([int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little", signed=True)
                     for t in texts], np.int64)


@dataclass
class PairPlan:
    """What the driver works out once to stream a dataset's pairs; cheap to send."""

    files: list[str]
    file_of: np.ndarray  # int64 [N]: index into files, pairs in read order
    row_of: np.ndarray  # int64 [N]: row in that file
    split: dict[str, np.ndarray]  # "train", "val", "test" → pair numbers

    def pairs(self, part: str) -> Pairs:
        """The ``part`` pairs read into memory (validation and test)."""
        from ..data.sample_stream import read_numbers

        table = read_numbers(self.files, self.file_of, self.row_of, self.split[part], ["doc_id", "text", "paired_text"])
        return Pairs(table.column("text").to_pylist(), table.column("paired_text").to_pylist(),
                     [str(v) for v in table.column("doc_id").to_pylist()])

    def tasks(self, part: str = "train", pairs_per_task: int = 512) -> list[dict]:
        from ..data.sample_stream import row_tasks

        return row_tasks(self.files, self.file_of, self.row_of, self.split[part], pairs_per_task)

    def dataset(self, spec, *, seed: int, pairs_per_task: int = 512, block: int = 64, num_cpus: float = 1):
        """A lazy Ray Dataset of the training pairs as ``{"q" [L], "a" [L], "q_hash", "a_hash"}`` rows."""
        import ray.data

        items = self.tasks("train", pairs_per_task)
        return ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
            read_task, batch_size=1, num_cpus=num_cpus, fn_kwargs={"spec": spec, "seed": seed, "block": block})


def plan_pairs(catalog, dataset: str, *, holdout: float, val_fraction: float, split_seed: int) -> PairPlan:
    """Indexes ``dataset``'s pairs (one pass over its two text columns) and draws the in-memory split."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ..errors import TransferlineError

    files = [str(f) for f in catalog.files(dataset)]
    file_of, row_of, queries = [], [], []
    for i, path in enumerate(files):
        if "paired_text" not in pq.read_schema(path).names:
            raise TransferlineError(f"{dataset!r} has no paired texts (problem → action); ingest e.g. MaintNet "
                                    "with `transferline ingest maintnet`")
        table = pq.read_table(path, columns=["text", "paired_text"])
        rows = np.flatnonzero(pc.is_valid(table.column("paired_text")).to_numpy(zero_copy_only=False))
        file_of.append(np.full(len(rows), i, np.int64))
        row_of.append(rows.astype(np.int64))
        queries += table.column("text").take(rows).to_pylist()
    if len(queries) < 2:
        raise TransferlineError(f"{dataset!r}: {len(queries)} row(s) with a paired text; retrieval needs at least 2")
    # the in-memory split: only the problem texts decide it, so they stand in for the pairs
    keys = Pairs(queries, queries, [str(i) for i in range(len(queries))])
    rest, test = keys.split(holdout, split_seed)
    train, val = rest.split(val_fraction, split_seed + 1)
    split = {name: np.array([int(n) for n in part.names], np.int64)
             for name, part in (("train", train), ("val", val), ("test", test))}
    return PairPlan(files, np.concatenate(file_of), np.concatenate(row_of), split)


def read_task(batch: dict, *, spec, seed: int, block: int) -> Iterator[dict]:
    """Ray Data map: one read task's rows → shuffled blocks of tokenized pairs with their text hashes."""
    from ..data.sample_stream import _preprocess, read_rows

    task, path = int(batch["task"][0]), str(batch["file"][0])
    table = read_rows(path, np.asarray(batch["rows"][0], np.int64), ["text", "paired_text"])
    queries, answers = table.column("text").to_pylist(), table.column("paired_text").to_pylist()
    tokenize = _preprocess(spec)  # built once per read process
    encoded = {"q": tokenize(queries), "a": tokenize(answers), "q_hash": text_hash(queries),
               "a_hash": text_hash(answers)}
    order = np.random.default_rng([seed, task]).permutation(len(queries))
    for lo in range(0, len(order), block):
        yield {k: v[order[lo:lo + block]] for k, v in encoded.items()}
