"""Pretraining of a text encoder on unlabelled texts: domain-adaptive masked language modelling
(the ``masked`` objective on text) or NT-Xent over two augmented views of each text (the
``contrastive`` objective: abbreviation swaps, token dropout), early-stopped on the objective's
loss over held-out texts (fixed masks and views)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch


@dataclass
class MLMConfig:
    """How an encoder is pretrained on unlabelled texts.

    Args:
        encoder: a text encoder name (``hf/<folder-or-name>``).
        objective: ``masked`` (masked language modelling) or ``contrastive`` (NT-Xent over text views).
        options: the objective's options (contrastive: ``drop``, ``swap``, ``lexicon``, ``temperature``).
        max_length: sub-word tokens per text.
        ratio: share of tokens masked (``masked``).
        epochs, batch_size, lr, weight_decay: AdamW, linear warm-up over the first tenth, then linear decay.
        head_lr: of the prediction head, new at the start (the encoder's own output matrix is shared).
        holdout: share of the texts held out; their masked-token loss (fixed masks) stops training early.
        patience: epochs without a lower held-out loss before stopping.
        seed: split, batch order, masks.
    """

    encoder: str = "hf/all-minilm-l6-v2"
    objective: str = "masked"
    options: dict = field(default_factory=dict)
    max_length: int = 32
    ratio: float = 0.15
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    holdout: float = 0.05
    patience: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or not 0 < self.holdout < 1:
            raise ValueError(f"epochs >= 1, batch_size >= 2, lr > 0 and 0 < holdout < 1; got {self.epochs}, "
                             f"{self.batch_size}, {self.lr}, {self.holdout}")
        if self.objective not in ("masked", "contrastive"):
            raise ValueError(f"text pretraining objective: 'masked' or 'contrastive', not {self.objective!r}")


def pretrain_mlm(texts: list[str], config: MLMConfig, *, device: str | torch.device = "cpu", progress: bool = False,
                 report: Callable[[dict], None] | None = None, dist=None):
    """``(encoder, spec, record)``: ``config.encoder`` after pretraining with ``config.objective`` on
    ``texts`` (distinct texts; ``holdout`` of them for early stopping). With ``dist`` each Ray Train
    worker draws its own batches and gradients are averaged after every step."""
    from ..data import Batch, InputSpec, TextInput
    from ..encoders import create_encoder
    from ..objectives import create_objective
    from ..train._dist import Dist
    from ..train.loop import run_epochs

    dist = dist or Dist()
    texts = sorted({t.strip() for t in texts if isinstance(t, str) and t.strip()})
    if len(texts) < 10:
        raise ValueError(f"masked language modelling needs at least 10 distinct texts, got {len(texts)}")
    order = np.random.default_rng(config.seed).permutation(len(texts))
    n_held = max(1, round(config.holdout * len(texts)))
    held, train = [texts[i] for i in order[:n_held]], [texts[i] for i in order[n_held:]]
    torch.manual_seed(config.seed)
    spec = TextInput(tokenizer=f"hf/{config.encoder.removeprefix('hf/')}", max_length=config.max_length)
    encoder = create_encoder(config.encoder, spec)
    options = {"ratio": config.ratio, **config.options} if config.objective == "masked" else dict(config.options)
    objective = create_objective(config.objective, encoder, InputSpec.of(spec), **options).to(device)
    dist.broadcast(objective)
    from ..data.hf import load_tokenizer

    tokenizer = load_tokenizer(spec.tokenizer)

    def ids(chunk: list[str]) -> torch.Tensor:
        return tokenizer(chunk, truncation=True, max_length=config.max_length, padding=True,
                         return_tensors="pt")["input_ids"].to(device)

    steps = max(1, len(train) // config.batch_size)
    rng = np.random.default_rng(config.seed + 1 + 1_000_003 * dist.rank)
    queue: list[np.ndarray] = []

    def step(progress: float) -> dict:
        if not queue:
            perm = rng.permutation(len(train))
            queue.extend(perm[i:i + config.batch_size] for i in range(0, steps * config.batch_size, config.batch_size))
        return objective.step(Batch({"text": ids([train[i] for i in queue.pop(0)])}, None), progress)

    @dist.same_on_all
    @torch.no_grad()
    def evaluate() -> dict:
        objective.eval()
        losses, accuracy, n = 0.0, 0.0, 0
        with torch.random.fork_rng():
            torch.manual_seed(config.seed + 7)  # the same masks every epoch
            for i in range(0, len(held), 128):
                out = objective.step(Batch({"text": ids(held[i:i + 128])}, None))
                k = len(held[i:i + 128])
                losses += float(out["loss"]) * k
                accuracy += float(out.get("masked_accuracy", 0.0)) * k
                n += k
        objective.train()
        return {"val_loss": losses / n, "val_masked_accuracy": accuracy / n}

    own = {id(p) for p in encoder.parameters()}
    opt = torch.optim.AdamW([{"params": list(encoder.parameters()), "lr": config.lr},
                             {"params": [p for p in objective.parameters() if id(p) not in own], "lr": config.head_lr}],
                            weight_decay=config.weight_decay)
    total = steps * config.epochs
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    t0 = time.perf_counter()
    before = evaluate()
    stopper = run_epochs(module=objective, step=step, steps_per_epoch=steps, epochs=config.epochs, optimizer=opt,
                         scheduler=scheduler, evaluate=evaluate, metric="val_loss", higher_is_better=False,
                         patience=config.patience, report=report, progress=progress,
                         after_backward=lambda: dist.average_gradients(objective))
    encoder.eval()
    history = stopper.history
    best = history[stopper.best_epoch] if stopper.best_epoch >= 0 else {}
    return encoder.cpu(), spec, {"best_epoch": stopper.best_epoch + 1, "epochs_run": len(history),
                                 "val_loss_before": before["val_loss"], "val_loss": best.get("val_loss"),
                                 "val_masked_accuracy_before": before["val_masked_accuracy"],
                                 "val_masked_accuracy": best.get("val_masked_accuracy"), "train_texts": len(train),
                                 "held_out_texts": len(held), "steps_per_epoch": steps,
                                 "fit_seconds": time.perf_counter() - t0, "history": history,
                                 "config": asdict(config)}
