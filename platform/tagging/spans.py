"""Entity spans ↔ word-level BIO tags, and span scores by seqeval.

A text is split into words at whitespace; a span covers the words it overlaps. Types are entity
type paths (``State/UndesirableState/FailedState``) cut at ``depth`` levels (1: MaintIE's 5 top-level
types; 2: its 32 types of the first two levels; 0: the full path). BIO cannot hold nested spans:
where annotated spans nest or overlap, the outermost (then the earliest) is kept — the flattening
the tagger is trained and scored on, stated with every result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

_WORD = re.compile(r"\S+")
IGNORE = -100  # the target of a word without a token (cut by max_length) and of padding


def cut(label: str, depth: int) -> str:
    """``label``'s first ``depth`` path levels (all of it for depth 0)."""
    return "/".join(label.split("/")[:depth]) if depth else label


def words(text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of each whitespace-separated word."""
    return [m.span() for m in _WORD.finditer(text)]


def outermost(spans: list[dict]) -> list[dict]:
    """Non-overlapping spans: the longest first where spans overlap, then the earliest; in text order."""
    kept, end = [], -1
    for span in sorted(spans, key=lambda s: (s["start"], -(s["end"] - s["start"]))):
        if span["start"] >= end:
            kept.append(span)
            end = span["end"]
    return kept


def bio_tags(offsets: list[tuple[int, int]], spans: list[dict], depth: int) -> list[str]:
    """One BIO tag per word for ``spans`` (flattened to the outermost ones), types cut at ``depth``."""
    tags = ["O"] * len(offsets)
    for span in outermost(spans):
        inside = [i for i, (a, b) in enumerate(offsets) if a < span["end"] and b > span["start"]]
        label = cut(span["label"], depth)
        for n, i in enumerate(inside):
            tags[i] = f"{'B' if n == 0 else 'I'}-{label}"
    return tags


def decode(text: str, offsets: list[tuple[int, int]], tags: list[str]) -> list[dict]:
    """Spans ``{label, start, end, text}`` (character offsets) of a word-level tag sequence; an
    I- tag without its B- starts a span, as in seqeval's default (CoNLL) scheme."""
    from seqeval.metrics.sequence_labeling import get_entities

    out = []
    for label, first, last in get_entities(list(tags)):
        start, end = offsets[first][0], offsets[last][1]
        out.append({"label": label, "start": start, "end": end, "text": text[start:end]})
    return out


def span_scores(true: list[list[str]], pred: list[list[str]]) -> dict:
    """Span micro precision, recall and F1 (exact type and boundaries; seqeval), with each type's."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    report = classification_report(true, pred, output_dict=True, zero_division=0)
    per_type = {k: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]),
                    "support": int(v["support"])} for k, v in report.items() if "avg" not in k}
    return {"f1": float(f1_score(true, pred, zero_division=0)),
            "precision": float(precision_score(true, pred, zero_division=0)),
            "recall": float(recall_score(true, pred, zero_division=0)),
            "spans": int(sum(v["support"] for v in per_type.values())), "per_type": per_type}


@dataclass
class TaggedTexts:
    """Texts, their words' character offsets and BIO tags, and the tag set in id order (``O`` first)."""

    texts: list[str]
    offsets: list[list[tuple[int, int]]]
    tags: list[list[str]]
    tag_names: list[str]
    depth: int
    names: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def types(self) -> list[str]:
        return sorted({t[2:] for t in self.tag_names if t != "O"})

    def subset(self, index) -> "TaggedTexts":
        index = [int(i) for i in np.asarray(index)]
        return replace(self, texts=[self.texts[i] for i in index], offsets=[self.offsets[i] for i in index],
                       tags=[self.tags[i] for i in index], names=[self.names[i] for i in index])

    def holdout(self, fraction: float, seed: int) -> tuple["TaggedTexts", "TaggedTexts"]:
        """``(rest, held)``: ``fraction`` of the texts, drawn with ``seed``, held out."""
        rest, held = holdout_index(len(self), fraction, seed)
        return self.subset(rest), self.subset(held)

    def words(self, i: int) -> list[str]:
        return [self.texts[i][a:b] for a, b in self.offsets[i]]


def holdout_index(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rest, held)`` positions among ``n`` texts: ``fraction`` of them, drawn with ``seed``, held
    out (both sorted)."""
    order = np.random.default_rng(seed).permutation(n)
    k = max(1, round(fraction * n))
    return np.sort(order[k:]), np.sort(order[:k])


def tag_split(n: int, holdout: float, val_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Positions of the training, validation and test texts among ``n``: ``holdout`` of them for
    the test (drawn with ``seed``), ``val_fraction`` of the rest for validation (``seed + 1``)."""
    rest, test = holdout_index(n, holdout, seed)
    train, val = holdout_index(len(rest), val_fraction, seed + 1)
    return {"train": rest[train], "val": rest[val], "test": test}


def tag_targets(data: TaggedTexts, first: np.ndarray) -> np.ndarray:
    """Tag ids ``[B, W]`` of each word that has a first token in ``first``; ``IGNORE`` elsewhere."""
    lookup = {t: i for i, t in enumerate(data.tag_names)}
    out = np.full(first.shape, IGNORE, np.int64)
    for b, tags in enumerate(data.tags):
        for w, tag in enumerate(tags[:first.shape[1]]):
            if first[b, w] >= 0:
                out[b, w] = lookup[tag]
    return out


def tag_set(types: list[str]) -> list[str]:
    return ["O"] + [f"{p}-{t}" for t in sorted(types) for p in "BI"]


def load_tagged(catalog, dataset: str, depth: int = 1, *, split: str | None = None) -> TaggedTexts:
    """A text dataset with entity spans (e.g. ingested with ``maintie``) as word-level BIO tags; the
    tag set is the whole dataset's, so that every split numbers tags alike."""
    import pyarrow as pa

    from ..errors import TransferlineError

    try:
        everything = catalog.read(dataset, columns=["spans"]).column("spans").to_pylist()
    except (pa.ArrowInvalid, KeyError):
        raise TransferlineError(f"{dataset!r} has no entity spans: tagging needs a text dataset ingested with "
                                "them (e.g. maintie)") from None
    table = catalog.read(dataset, split=split, columns=["doc_id", "text", "spans"])
    types = sorted({cut(s["label"], depth) for spans in everything for s in outermost(spans or [])})
    return tagged(table.column("text").to_pylist(), table.column("spans").to_pylist(),
                  table.column("doc_id").to_pylist(), tag_set(types), depth)


def tagged(texts: list[str], spans: list, names: list[str], tag_names: list[str], depth: int) -> TaggedTexts:
    """Texts with their annotated spans as word-level BIO tags over ``tag_names``."""
    offsets = [words(t) for t in texts]
    tags = [bio_tags(o, s or [], depth) for o, s in zip(offsets, spans)]
    return TaggedTexts(texts=texts, offsets=offsets, tags=tags, tag_names=tag_names, depth=depth, names=names)


class WordTokens:
    """Word lists → sub-word ids ``[B, L]`` (padded with the tokenizer's pad id to the longest, at most
    ``max_length``) and each word's first sub-word position ``[B, W]`` (-1 for a word cut by
    ``max_length``), by transformers' tokenizer (training's side)."""

    def __init__(self, spec, pad_to_max: bool = False) -> None:
        from ..data.hf import load_tokenizer

        self.spec, self.padding = spec, "max_length" if pad_to_max else True
        self.tokenizer = load_tokenizer(spec.tokenizer)
        if not self.tokenizer.is_fast:
            raise ValueError(f"tagging needs a fast tokenizer (word alignment); {spec.tokenizer!r} has none")

    def __call__(self, word_lists: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        enc = self.tokenizer([list(w) for w in word_lists], is_split_into_words=True, truncation=True,
                             max_length=self.spec.max_length, padding=self.padding)
        first = np.full((len(word_lists), max([len(w) for w in word_lists] + [1])), -1, np.int64)
        for b in range(len(word_lists)):
            for position, word in enumerate(enc.word_ids(b)):
                if word is not None and first[b, word] < 0:
                    first[b, word] = position
        return np.asarray(enc["input_ids"], np.int64), first


class TagPreprocess:
    """The serving side of a tagger: texts → token ids ``[B, max_length]`` split into words as in
    training, and per-token logits → each text's spans (character offsets). Where the text model's
    folder has its ``tokenizer.json`` the ``tokenizers`` library alone tokenizes (no transformers,
    no torch in a serving replica); otherwise transformers does."""

    def __init__(self, spec) -> None:
        from ..data.hf import WordIdsTokenizer, local_tokenizer_json

        folder = local_tokenizer_json(spec.tokenizer)
        self.tokens = WordIdsTokenizer(folder, spec.max_length) if folder else WordTokens(spec, pad_to_max=True)

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.tokens([[t[a:b] for a, b in words(t)] for t in texts])[0]

    def spans(self, texts: list[str], logits: np.ndarray, tag_names: list[str]) -> list[list[dict]]:
        offsets = [words(t) for t in texts]
        _, first = self.tokens([[t[a:b] for a, b in o] for t, o in zip(texts, offsets)])
        best = logits.argmax(-1)
        return [decode(text, o, [tag_names[best[b, p]] if p >= 0 else "O" for p in first[b, :len(o)]])
                for b, (text, o) in enumerate(zip(texts, offsets))]
