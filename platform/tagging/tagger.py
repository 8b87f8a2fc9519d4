"""A token-classification head on a text encoder: BIO tags per word, read at each word's first
sub-word token (as BERT's NER recipe, Devlin et al., NAACL 2019), trained on the one epoch loop
with early stopping on the validation span F1.

Transfer: ``pretrained`` starts the encoder from a pretraining run (e.g. ``transferline tag
pretrain``'s masked-language-model run); ``freeze_epochs`` trains the head alone first (freeze →
unfreeze; as many as ``epochs``: a linear probe); the encoder learns at ``lr`` and the head at
``head_lr`` (discriminative learning rates).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .spans import IGNORE, TaggedTexts, WordTokens, decode, span_scores, tag_targets, words



@dataclass
class TagConfig:
    """How a tagger is trained.

    Args:
        encoder: a text encoder name (``hf/<folder-or-name>``).
        pretrained: a run folder whose ``encoder.safetensors`` to start from (None: the encoder's own weights).
        depth: entity type levels kept (1: top-level types; 2: the first two levels; 0: full paths).
        max_length: sub-word tokens per text; words beyond it are tagged ``O``.
        epochs, batch_size: at most this many epochs of this many texts per step.
        lr, head_lr, weight_decay: AdamW; linear warm-up over the first tenth of the steps, then linear decay.
        dropout: on the token features before the head.
        freeze_epochs: epochs with the encoder frozen (the head alone) before it is unfrozen.
        patience: epochs without a better validation span F1 before stopping.
        seed: head initialisation, batch order and dropout.
    """

    encoder: str = "hf/all-minilm-l6-v2"
    pretrained: str | None = None
    depth: int = 1
    max_length: int = 48  # MaintIE's work orders have at most 12 words: about 30 sub-words
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.1
    freeze_epochs: int = 0
    patience: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.head_lr <= 0:
            raise ValueError(f"epochs >= 1, batch_size >= 1, lr > 0 and head_lr > 0; got {self.epochs}, "
                             f"{self.batch_size}, {self.lr}, {self.head_lr}")
        if self.depth < 0 or self.freeze_epochs < 0 or self.max_length < 4:
            raise ValueError(f"depth >= 0, freeze_epochs >= 0 and max_length >= 4; got {self.depth}, "
                             f"{self.freeze_epochs}, {self.max_length}")


class Tagger(nn.Module):
    """Encoder token features → dropout → linear tag logits, read per word: ``[B, W, tags]``."""

    def __init__(self, encoder, tag_names: list[str], dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder, self.tag_names = encoder, list(tag_names)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.out_dim, len(tag_names))

    def token_logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Tag logits of every sub-word token ``[B, L, tags]``."""
        hidden, _ = self.encoder.tokens(ids)
        return self.head(self.dropout(hidden))

    def forward(self, ids: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        logits = self.token_logits(ids)
        index = first.clamp(min=0).unsqueeze(-1).expand(-1, -1, logits.shape[-1])
        return torch.gather(logits, 1, index)


class TokenLogits(nn.Module):
    """What a registered tagger exports: token ids ``[B, L]`` → per-token tag logits ``[B, L, tags]``;
    the server reads each word's first token with :class:`~transferline.tagging.spans.TagPreprocess`."""

    def __init__(self, tagger: Tagger) -> None:
        super().__init__()
        self.tagger = tagger

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tagger.token_logits(ids)


def tag_spec(config: TagConfig):
    """The tagger's input spec: its encoder's tokenizer and ``config.max_length``."""
    from ..data import TextInput

    return TextInput(tokenizer=f"hf/{config.encoder.removeprefix('hf/')}", max_length=config.max_length)


def build_tagger(config: TagConfig, tag_names: list[str]):
    """A tagger for ``tag_names`` and its input spec (tokenizer, max length), the encoder from
    ``config.pretrained`` where given."""
    from ..encoders import create_encoder

    spec = tag_spec(config)
    encoder = create_encoder(config.encoder, spec)
    if config.pretrained:
        from pathlib import Path

        from ..train.checkpoint import load_state

        encoder.load_state_dict(load_state(Path(config.pretrained), "encoder")[0])
    return Tagger(encoder, tag_names, config.dropout), spec


@torch.no_grad()
def predict_tags(tagger: Tagger, tokens: WordTokens, word_lists: list[list[str]], batch_size: int = 64,
                 device: str | torch.device = "cpu") -> list[list[str]]:
    """Each text's word tags (``O`` for words past the token limit)."""
    was = tagger.training
    tagger.eval()
    out = []
    for i in range(0, len(word_lists), batch_size):
        chunk = word_lists[i:i + batch_size]
        ids, first = tokens(chunk)
        best = tagger(torch.from_numpy(ids).to(device), torch.from_numpy(first).to(device)).argmax(-1).cpu().numpy()
        out += [[tagger.tag_names[best[b, w]] if first[b, w] >= 0 else "O" for w in range(len(words_))]
                for b, words_ in enumerate(chunk)]
    tagger.train(was)
    return out


def evaluate_tagger(tagger: Tagger, spec, data: TaggedTexts, device: str | torch.device = "cpu") -> dict:
    """Span micro precision, recall, F1 (and per type) of ``tagger`` on ``data`` (seqeval)."""
    tokens = WordTokens(spec)
    return span_scores(data.tags, predict_tags(tagger, tokens, [data.words(i) for i in range(len(data))],
                                               device=device))


def tag_texts(tagger: Tagger, spec, texts: list[str]) -> list[list[dict]]:
    """Each text's entity spans ``{label, start, end, text}`` in character offsets of the text."""
    offsets = [words(t) for t in texts]
    tags = predict_tags(tagger, WordTokens(spec), [[t[a:b] for a, b in o] for t, o in zip(texts, offsets)])
    return [decode(t, o, g) for t, o, g in zip(texts, offsets, tags)]


def fit_tagger(train, val: TaggedTexts, config: TagConfig, *, device: str | torch.device = "cpu",
               progress: bool = False, report: Callable[[dict], None] | None = None, dist=None):
    """Trains a tagger on ``train``, early-stopped on ``val``'s span F1; returns the best tagger,
    its input spec and the fit's record. ``train``: :class:`TaggedTexts` in memory, or a Ray Train
    worker's :class:`~transferline.tagging.stream.TagStream`. With ``dist`` (a Ray Train worker's
    place) each worker draws its own batches (in memory: from every text; streamed: from its shard)
    and gradients are averaged after every step."""
    from ..train._dist import Dist
    from ..train.loop import run_epochs

    dist = dist or Dist()
    torch.manual_seed(config.seed)
    tagger, spec = build_tagger(config, train.tag_names)
    tagger.to(device)
    dist.broadcast(tagger)
    rng = np.random.default_rng(config.seed + 1_000_003 * dist.rank)
    if isinstance(train, TaggedTexts):
        ids, first = WordTokens(spec)([train.words(i) for i in range(len(train))])
        targets = tag_targets(train, first)
        steps = max(1, len(train) // config.batch_size)
        queue: list[np.ndarray] = []

        def draw() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            if not queue:
                order = rng.permutation(len(train))
                queue.extend(order[i:i + config.batch_size]
                             for i in range(0, steps * config.batch_size, config.batch_size))
            rows = queue.pop(0)
            return ids[rows], first[rows], targets[rows]
    else:  # a worker's shard (ShardStream): the same number of steps on every worker
        steps, batches = train.steps(dist.world, config.batch_size), train.cycle(config.batch_size, rng, dist.rank)

        def draw() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            batch = next(batches)
            return batch["ids"], batch["first"], batch["targets"]

    def step(progress: float) -> dict:
        ids_, first_, targets_ = draw()
        width = int((first_ >= 0).sum(1).max()) or 1
        logits = tagger(torch.from_numpy(ids_).to(device), torch.from_numpy(first_[:, :width]).to(device))
        target = torch.from_numpy(targets_[:, :width]).to(device)
        return {"loss": F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE)}

    encoder_params = list(tagger.encoder.parameters())
    opt = torch.optim.AdamW([{"params": encoder_params, "lr": config.lr},
                             {"params": list(tagger.head.parameters()), "lr": config.head_lr}],
                            weight_decay=config.weight_decay)
    total = steps * config.epochs
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))

    def on_epoch_start(epoch: int) -> None:
        for p in encoder_params:
            p.requires_grad_(epoch >= config.freeze_epochs)

    @dist.same_on_all
    def evaluate() -> dict:
        scores = evaluate_tagger(tagger, spec, val, device)
        return {"val_f1": scores["f1"], "val_precision": scores["precision"], "val_recall": scores["recall"]}

    t0 = time.perf_counter()
    stopper = run_epochs(module=tagger, step=step, steps_per_epoch=steps, epochs=config.epochs, optimizer=opt,
                         scheduler=scheduler, evaluate=evaluate, metric="val_f1", higher_is_better=True,
                         patience=config.patience, report=report, progress=progress, on_epoch_start=on_epoch_start,
                         after_backward=lambda: dist.average_gradients(tagger))
    for p in encoder_params:
        p.requires_grad_(True)
    tagger.eval()
    history = stopper.history
    best = history[stopper.best_epoch] if stopper.best_epoch >= 0 else {}
    return tagger.cpu(), spec, {"best_epoch": stopper.best_epoch + 1, "epochs_run": len(history),
                                "val_f1": best.get("val_f1"), "train_texts": len(train), "val_texts": len(val),
                                "tags": len(train.tag_names), "steps_per_epoch": steps,
                                "fit_seconds": time.perf_counter() - t0, "history": history, "config": asdict(config)}
