"""The batch every training step, objective and adaptation method receives.

Inputs are a dict of modalities (``{"series": [B, C, L]}``, ``{"image": [B, C, H, W]}``, or
several); targets take the task's own shape: a tensor (a value, a class, several outputs, a
multi-hot set) or a list with one entry per sample (e.g. one dict of boxes per image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """Inputs by modality, targets, domain ids, and which modalities each sample has.

    Args:
        inputs: modality → tensor with the batch on its first axis.
        target: a tensor ``[B, ...]`` or a list of ``B`` per-sample targets; None when unlabelled.
        domain: domain id of each sample ``[B]``.
        present: ``[B, M]`` bool, modality ``m`` (in ``inputs`` order) present for sample ``b``;
            None when every sample has every modality.
    """

    inputs: dict[str, torch.Tensor]
    target: torch.Tensor | list | None = None
    domain: torch.Tensor | None = None
    present: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def to(self, device, non_blocking: bool = True) -> "Batch":
        move = lambda t: t.to(device, non_blocking=non_blocking) if torch.is_tensor(t) else t  # noqa: E731
        target = [_move_target(t, device) for t in self.target] if isinstance(self.target, list) else \
            move(self.target)
        return Batch({k: move(v) for k, v in self.inputs.items()}, target, move(self.domain), move(self.present))

    @staticmethod
    def cat(batches: list["Batch"]) -> "Batch":
        """One batch from several with the same modalities, in order (targets of unlabelled parts dropped)."""
        keys = list(batches[0].inputs)
        if any(list(b.inputs) != keys for b in batches):
            raise ValueError(f"batches to join take different modalities: {[list(b.inputs) for b in batches]}")
        inputs = {k: torch.cat([b.inputs[k] for b in batches]) for k in keys}
        present = None
        if any(b.present is not None for b in batches):
            present = torch.cat([b.present if b.present is not None else
                                 torch.ones(len(b), len(keys), dtype=torch.bool, device=b.inputs[keys[0]].device)
                                 for b in batches])
        return Batch(inputs, _cat_targets([b.target for b in batches]), _cat_optional([b.domain for b in batches]),
                     present)


def _move_target(target, device):
    if torch.is_tensor(target):
        return target.to(device, non_blocking=True)
    if isinstance(target, dict):
        return {k: _move_target(v, device) for k, v in target.items()}
    return target


def _cat_targets(targets: list):
    if all(t is None for t in targets):
        return None
    if any(t is None for t in targets):
        raise ValueError("cannot join labelled and unlabelled batches")
    if all(isinstance(t, list) for t in targets):
        return [x for t in targets for x in t]
    return torch.cat(targets)


def _cat_optional(parts: list):
    return None if any(p is None for p in parts) else torch.cat(parts)


class SampleBatches:
    """What image and text samples share: batches, draws and samples over ``get(index)`` (the
    model input of the samples at ``index``) with per-sample ``labels`` and ``domains``; the input
    goes into each :class:`Batch` under the class's ``modality``."""

    modality: str

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
                target=None):
        """One pass as :class:`Batch` es (the input, targets, domains), shuffled with ``seed`` if asked;
        ``target(index)`` gives a batch's targets (default: its labels)."""
        import numpy as np

        order = np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        stop = len(order) - len(order) % batch_size if drop_last else len(order)
        for lo in range(0, stop, batch_size):
            idx = order[lo:lo + batch_size]
            yield Batch({self.modality: torch.from_numpy(self.get(idx))},
                        target(idx) if target else torch.from_numpy(self.labels[idx]),
                        torch.from_numpy(self.domains[idx]))

    def draw(self, n: int, rng):
        """Up to ``n`` samples drawn without replacement by ``rng``, kept in order."""
        import numpy as np

        return self.subset(np.sort(rng.choice(len(self), min(n, len(self)), replace=False)))

    def sample(self, n: int, rng):
        """The model input of :meth:`draw`."""
        import numpy as np

        drawn = self.draw(n, rng)
        return drawn.get(np.arange(len(drawn)))

    def _members(self, c: int):
        """Positions of the samples of class ``c``."""
        import numpy as np

        return np.flatnonzero(self.labels[:, c] > 0 if getattr(self, "multi_label", False) else self.labels == c)

    def holdout(self, fraction: float, seed: int):
        """``(rest, held)``: ``fraction`` of each class's samples (at least one) held out, drawn with
        ``seed`` (multi-label: a sample is held out with the first class that draws it)."""
        held = self.holdout_mask(fraction, seed)
        return self.subset(~held), self.subset(held)

    def holdout_mask(self, fraction: float, seed: int):
        """``[N]`` bool: the samples :meth:`holdout` holds out."""
        import numpy as np

        rng = np.random.default_rng(seed)
        held = np.zeros(len(self), bool)
        for c in range(len(self.classes)):
            members = rng.permutation(self._members(c))
            if len(members):
                held[members[:max(1, round(fraction * len(members)))]] = True
        return held

    def per_class_index(self, k: int, seed: int):
        """Sorted positions of ``k`` samples of every class, drawn with ``seed`` (all of a class that has fewer)."""
        import numpy as np

        rng = np.random.default_rng(seed)
        chosen = [rng.permutation(self._members(c))[:k] for c in range(len(self.classes))]
        return np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)

    def per_class(self, k: int, seed: int):
        """The samples at :meth:`per_class_index`."""
        return self.subset(self.per_class_index(k, seed))
