"""Dense problem → fix retrieval: a text encoder embeds problems and actions into one space (cosine
similarity), zero-shot or contrastively fine-tuned on (problem, action) pairs.

Fine-tuning: symmetric InfoNCE with in-batch negatives (as CLIP, Radford et al. 2021, and
sentence-embedding training, Reimers & Gurevych 2019): each problem's action is its positive and
every other action of the batch a negative, and the reverse. Each epoch takes one row of every
distinct problem (a random one of its actions), so a batch never holds one problem twice; another
row with the very same action text is masked out of the negatives rather than pushed away.
Early stopping on the MRR of a validation split (problems held out of training).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .pairs import Pairs, rank_metrics


@dataclass
class PairConfig:
    """How a text encoder is fine-tuned on pairs.

    Args:
        encoder: a text encoder name (``hf/<folder-or-name>``).
        pretrained: a pretraining run folder whose encoder to start from (None: the encoder's own weights).
        max_length: tokens per text.
        epochs, batch_size, lr, weight_decay: AdamW, linear warm-up over the first tenth, then constant.
        temperature: of the InfoNCE logits (cosine similarity / temperature).
        patience: epochs without a better validation MRR before stopping.
        seed: batch order, the row drawn of each problem per epoch.
    """

    encoder: str = "hf/all-minilm-l6-v2"
    pretrained: str | None = None
    max_length: int = 32  # MaintNet's texts are cut at about 60 characters: some 20 tokens
    epochs: int = 3
    batch_size: int = 32
    lr: float = 3e-5
    weight_decay: float = 0.01
    temperature: float = 0.05
    patience: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or self.temperature <= 0:
            raise ValueError(f"epochs >= 1, batch_size >= 2, lr > 0 and temperature > 0; got {self.epochs}, "
                             f"{self.batch_size}, {self.lr}, {self.temperature}")


def pair_spec(config: PairConfig):
    """The retriever's input spec: its encoder's tokenizer and ``config.max_length``."""
    from ..data import TextInput

    return TextInput(tokenizer=f"hf/{config.encoder.removeprefix('hf/')}", max_length=config.max_length)


def build_encoder(config: PairConfig):
    """The text encoder and its input spec (tokenizer and max length), with the pretrained weights."""
    from ..encoders import create_encoder

    spec = pair_spec(config)
    encoder = create_encoder(config.encoder, spec)
    if config.pretrained:
        from pathlib import Path

        from ..train.checkpoint import load_state

        encoder.load_state_dict(load_state(Path(config.pretrained), "encoder")[0])
    return encoder, spec


class Embedder:
    """Texts → L2-normalized embeddings (float32 numpy), by an encoder and its input spec's tokenizer."""

    def __init__(self, encoder, spec, batch_size: int = 128, device: str | torch.device = "cpu") -> None:
        from ..data.preprocess import TextPreprocess

        self.encoder, self.preprocess, self.batch_size, self.device = encoder, TextPreprocess(spec), batch_size, device

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> np.ndarray:
        was = self.encoder.training
        self.encoder.eval()
        parts = [F.normalize(self.encoder(torch.from_numpy(self.preprocess(texts[i:i + self.batch_size])).to(self.device)),
                             dim=1).float().cpu().numpy() for i in range(0, len(texts), self.batch_size)]
        self.encoder.train(was)
        return np.concatenate(parts) if parts else np.zeros((0, self.encoder.out_dim), np.float32)


def dense_scores(embed: Embedder, queries: list[str], documents: list[str]) -> np.ndarray:
    """Cosine similarity ``[Q, D]`` of every query to every document."""
    return embed(queries) @ embed(documents).T


def evaluate_dense(embed: Embedder, pairs: Pairs, ks: tuple[int, ...] = (1, 10)) -> dict[str, float]:
    task = pairs.task()
    return rank_metrics(dense_scores(embed, task.queries, task.documents), task.relevant, ks)


def pair_loss(q: torch.Tensor, a: torch.Tensor, same: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE of matching rows of ``q`` and ``a`` ``[B, d]``; ``same [B, B]`` marks other
    rows with the identical answer text (or problem text), left out of the negatives."""
    logits = F.normalize(q, dim=1) @ F.normalize(a, dim=1).T / temperature
    logits = logits.masked_fill(same & ~torch.eye(len(q), dtype=torch.bool, device=q.device), float("-inf"))
    targets = torch.arange(len(q), device=q.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def fit_pairs(train, val: Pairs, config: PairConfig, *, device: str | torch.device = "cpu",
              progress: bool = False, report: Callable[[dict], None] | None = None, dist=None):
    """Fine-tunes ``config.encoder`` on ``train`` pairs, early-stopped on ``val``'s MRR; returns the
    best encoder, its input spec and the fit's record (history, best epoch, validation metrics).
    ``train``: :class:`Pairs` in memory, or a Ray Train worker's
    :class:`~transferline.data.sample_stream.ShardStream`. With ``dist`` (a Ray Train worker's place)
    each worker draws its own batches (in memory: from every pair; streamed: from its shard) and
    gradients are averaged after every step."""
    from ..data.preprocess import TextPreprocess
    from ..train._dist import Dist
    from ..train.loop import run_epochs

    dist = dist or Dist()
    torch.manual_seed(config.seed)
    encoder, spec = build_encoder(config)
    encoder.to(device)
    dist.broadcast(encoder)
    rng = np.random.default_rng(config.seed + 1_000_003 * dist.rank)
    if isinstance(train, Pairs):
        tokenize = TextPreprocess(spec)
        by_problem: dict[str, list[int]] = {}
        for i, q in enumerate(train.queries):
            by_problem.setdefault(q, []).append(i)
        groups = list(by_problem.values())
        answer_ids = {a: i for i, a in enumerate(sorted(set(train.answers)))}
        steps, n_problems = max(1, len(groups) // config.batch_size), len(groups)
        queue: list[np.ndarray] = []

        def draw() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            if not queue:  # a new epoch: one row of each problem, in a new order
                rows = np.array([g[rng.integers(len(g))] for g in groups])[rng.permutation(len(groups))]
                queue.extend(rows[i:i + config.batch_size]
                             for i in range(0, steps * config.batch_size, config.batch_size))
            rows = queue.pop(0)
            ids = np.array([answer_ids[train.answers[i]] for i in rows], np.int64)
            return (tokenize([train.queries[i] for i in rows]), tokenize([train.answers[i] for i in rows]),
                    rows.astype(np.int64), ids)  # the rows' problems differ: their numbers stand for them
    else:  # a worker's shard (ShardStream): the same number of steps on every worker
        steps, n_problems = train.steps(dist.world, config.batch_size), None
        batches = train.cycle(config.batch_size, rng, dist.rank)

        def draw() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            batch = next(batches)
            return batch["q"], batch["a"], batch["q_hash"], batch["a_hash"]

    def step(progress: float) -> dict:
        q_ids, a_ids, problem, answer = (torch.from_numpy(np.asarray(v)).to(device) for v in draw())
        same = (answer[:, None] == answer[None, :]) | (problem[:, None] == problem[None, :])
        return {"loss": pair_loss(encoder(q_ids), encoder(a_ids), same, config.temperature)}

    embed = Embedder(encoder, spec, device=device)
    opt = torch.optim.AdamW(encoder.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(1, steps * config.epochs // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    t0 = time.perf_counter()
    @dist.same_on_all
    def evaluate() -> dict:
        return {f"val_{k}": v for k, v in evaluate_dense(embed, val).items()}

    stopper = run_epochs(module=encoder, step=step, steps_per_epoch=steps, epochs=config.epochs, optimizer=opt,
                         scheduler=scheduler, evaluate=evaluate, metric="val_mrr", higher_is_better=True,
                         patience=config.patience, report=report, progress=progress,
                         after_backward=lambda: dist.average_gradients(encoder))
    encoder.eval()
    history = stopper.history
    best = history[stopper.best_epoch] if stopper.best_epoch >= 0 else {}
    return encoder.cpu(), spec, {"best_epoch": stopper.best_epoch + 1, "epochs_run": len(history),
                                 "val_mrr": best.get("val_mrr"), "val_recall_at_10": best.get("val_recall_at_10"),
                                 "train_pairs": len(train), "train_problems": n_problems, "val_pairs": len(val),
                                 "steps_per_epoch": steps, "fit_seconds": time.perf_counter() - t0,
                                 "history": history, "config": asdict(config)}
