"""A torch Dataset over :class:`Windows`, fetching whole batches with one gather."""

from __future__ import annotations

import numpy as np
import torch

from .windows import Windows


class WindowDataset(torch.utils.data.Dataset):
    """Yields ``(x [C, L], y, domain)`` for an int index, or the stacked batch for a list of indices.

    :meth:`loader` feeds index lists straight to ``__getitem__``, so a batch is one numpy gather
    instead of ``batch_size`` item fetches and a collate.
    """

    def __init__(self, windows: Windows) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            x, y, d = self[[int(index)]]
            return x[0], y[0], d[0]
        idx = np.asarray(index)
        return (torch.from_numpy(self.windows.get(idx)), torch.from_numpy(self.windows.labels[idx]),
                torch.from_numpy(self.windows.domains[idx]))

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All windows as three tensors, for data small enough to hold in memory."""
        return self[np.arange(len(self.windows))]

    def loader(self, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
               **kwargs) -> torch.utils.data.DataLoader:
        """A DataLoader of batches ``(x [B, C, L], y [B], domain [B])``, seeded when shuffled."""
        base = (torch.utils.data.RandomSampler(self, generator=torch.Generator().manual_seed(seed)) if shuffle
                else torch.utils.data.SequentialSampler(self))
        sampler = torch.utils.data.BatchSampler(base, batch_size=batch_size, drop_last=drop_last)
        return torch.utils.data.DataLoader(self, sampler=sampler, batch_size=None, **kwargs)
