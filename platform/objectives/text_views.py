"""Random views of maintenance texts for contrastive pretraining (NT-Xent over augmentations, as
SimCSE and EDA do for sentences: Gao et al., EMNLP 2021; Wei & Zou, EMNLP 2019): abbreviation swaps
from a lexicon (a word for its abbreviation and back), then token dropout.

Token ids go back to text with the spec's tokenizer, words are swapped, the text is tokenized
again at the same length, and each real token is then dropped (set to the pad id, which the
encoder's attention mask leaves out) with probability ``drop``; the first token ([CLS]) stays.
The default lexicon is MaintNet's aviation abbreviations (vendored with attribution).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import torch


def read_lexicon(path: str | Path | None = None) -> dict[str, str]:
    """``{abbreviation: standard description}`` from a CSV with columns ``Abbreviated`` and
    ``Standard_Description`` (MaintNet's format); default: the vendored MaintNet list."""
    if path is None:
        from ..sample_data import sample_path

        path = sample_path("maintnet") / "Aviation_Abbreviation_Dataset.csv"
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"Abbreviated", "Standard_Description"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: an abbreviation lexicon needs columns Abbreviated and Standard_Description "
                             f"(missing {sorted(missing)})")
        pairs = {row["Abbreviated"].strip().lower(): row["Standard_Description"].strip().lower() for row in reader
                 if row["Abbreviated"] and row["Standard_Description"]}
    return pairs


class TextViews:
    """Callable on token ids ``[B, L]`` → another random view ``[B, L]`` of the same texts."""

    def __init__(self, spec, drop: float = 0.1, swap: float = 0.5, lexicon: str | None = None) -> None:
        from ..data.hf import load_tokenizer

        if not 0 <= drop < 1 or not 0 <= swap <= 1:
            raise ValueError(f"text views: 0 <= drop < 1 and 0 <= swap <= 1; got drop={drop}, swap={swap}")
        self.tokenizer, self.drop, self.swap = load_tokenizer(spec.tokenizer), drop, swap
        self.pad = int(self.tokenizer.pad_token_id or 0)
        lexicon_pairs = read_lexicon(lexicon)
        self.short = {long: short for short, long in lexicon_pairs.items()}
        self.long = dict(lexicon_pairs)
        phrases = sorted([*self.short, *self.long], key=len, reverse=True)
        self.pattern = re.compile(r"\b(" + "|".join(re.escape(p) for p in phrases) + r")\b") if phrases else None

    def swap_words(self, text: str) -> str:
        """Each lexicon word or phrase in ``text`` replaced by its counterpart with probability ``swap``."""
        if self.pattern is None or not self.swap:
            return text

        def replace(m: re.Match) -> str:
            word = m.group(1)
            other = self.short.get(word) or self.long.get(word)
            return other if other and float(torch.rand(())) < self.swap else word  # torch's RNG: seeded runs repeat
        return self.pattern.sub(replace, text.lower())

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(ids.tolist(), skip_special_tokens=True)
        out = self.tokenizer([self.swap_words(t) for t in texts], truncation=True, max_length=ids.shape[1],
                             padding="max_length", return_tensors="pt")["input_ids"].to(ids.device)
        special = torch.tensor([self.tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True)
                                for row in out.tolist()], dtype=torch.bool, device=ids.device)
        dropped = (torch.rand(out.shape, device=ids.device) < self.drop) & ~special
        return out.masked_fill(dropped, self.pad)
