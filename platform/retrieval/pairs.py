"""Problem → fix retrieval over maintenance logs: pairs of a problem text and the action that fixed
it (MaintNet's PROBLEM / ACTION; any ``text`` dataset with a ``paired_text`` column), split by
problem text, and the ranking metrics.

Evaluation: for each distinct held-out problem, every distinct held-out action is a candidate; the
relevant ones are the actions recorded for that problem (a problem logged several times has
several). ``recall_at_k`` is the share of problems with a relevant action among the first k;
``mrr`` the mean reciprocal rank of the first relevant action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Pairs:
    """Rows of (problem, action): ``queries[i]`` was fixed by ``answers[i]``; ``names`` the row ids."""

    queries: list[str]
    answers: list[str]
    names: list[str]

    def __len__(self) -> int:
        return len(self.queries)

    def subset(self, index) -> "Pairs":
        index = np.asarray(index, np.int64)
        return Pairs([self.queries[i] for i in index], [self.answers[i] for i in index], [self.names[i] for i in index])

    def split(self, fraction: float, seed: int) -> tuple["Pairs", "Pairs"]:
        """``(rest, held)``: ``fraction`` of the distinct problem texts (with all their rows) held
        out, drawn with ``seed``, so no held-out problem is seen in training."""
        if not 0 < fraction < 1:
            raise ValueError(f"held-out fraction in (0, 1), not {fraction}")
        problems = sorted(set(self.queries))
        chosen = np.random.default_rng(seed).permutation(len(problems))[:max(1, round(fraction * len(problems)))]
        held_out = {problems[i] for i in chosen}
        held = np.array([q in held_out for q in self.queries])
        return self.subset(np.flatnonzero(~held)), self.subset(np.flatnonzero(held))

    def task(self) -> "RetrievalSet":
        """The distinct problems, the distinct actions, and which actions answer each problem."""
        problems = sorted(set(self.queries))
        actions = sorted(set(self.answers))
        p_id, a_id = {p: i for i, p in enumerate(problems)}, {a: i for i, a in enumerate(actions)}
        relevant: list[set[int]] = [set() for _ in problems]
        for q, a in zip(self.queries, self.answers):
            relevant[p_id[q]].add(a_id[a])
        return RetrievalSet(problems, actions, relevant)


@dataclass
class RetrievalSet:
    queries: list[str]
    documents: list[str]
    relevant: list[set[int]]


def load_pairs(catalog, dataset: str, *, domains: list[str] | None = None, domain: str = "plant") -> Pairs:
    """The (text, paired_text) rows of a ``text`` dataset; rows without a paired text are left out."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..errors import TransferlineError

    names = catalog.schema(dataset).names
    if "paired_text" not in names:
        raise TransferlineError(f"{dataset!r} has no paired texts (problem → action); ingest e.g. MaintNet with "
                                "`transferline ingest maintnet`")
    table = catalog.read(dataset, columns=["doc_id", "text", "paired_text", domain])
    if domains:
        table = table.filter(pc.is_in(table.column(domain), pa.array([str(d) for d in domains])))
    table = table.filter(pc.is_valid(table.column("paired_text")))
    if table.num_rows < 2:
        raise TransferlineError(f"{dataset!r}: {table.num_rows} row(s) with a paired text; retrieval needs at least 2")
    return Pairs(table.column("text").to_pylist(), table.column("paired_text").to_pylist(),
                 [str(v) for v in table.column("doc_id").to_pylist()])


def rank_metrics(scores: np.ndarray, relevant: list[set[int]], ks: tuple[int, ...] = (1, 10)) -> dict[str, float]:
    """recall@k (a relevant document among the first k) and MRR of ``scores [Q, D]`` (higher first)."""
    scores = np.asarray(scores, np.float64)
    first = np.empty(len(relevant), np.int64)
    for q, rel in enumerate(relevant):
        rel_scores = scores[q, sorted(rel)]
        # rank of the best relevant document: 1 + documents scored strictly higher (ties count for it)
        first[q] = 1 + int((scores[q] > rel_scores.max()).sum())
    out = {f"recall_at_{k}": float((first <= k).mean()) for k in ks}
    out["mrr"] = float((1.0 / first).mean())
    out["queries"], out["documents"] = len(relevant), int(scores.shape[1])
    return out


def tokenize(text: str) -> list[str]:
    """Lower-case word and number tokens (BM25's terms)."""
    import re

    return re.findall(r"[a-z0-9]+", text.lower())


class BM25:
    """Okapi BM25 (Robertson & Zaragoza 2009) over ``documents`` by the ``rank-bm25`` package."""

    def __init__(self, documents: list[str]) -> None:
        from rank_bm25 import BM25Okapi

        self.index = BM25Okapi([tokenize(d) or ["_"] for d in documents])

    def scores(self, queries: list[str]) -> np.ndarray:
        return np.stack([self.index.get_scores(tokenize(q)) for q in queries])
