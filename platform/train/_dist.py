"""Data parallelism inside the one training loop: which worker this is, and gradient averaging.

# NOTE: gradients are averaged with ``torch.distributed.all_reduce`` after backward rather than by
# wrapping the model in DistributedDataParallel: pretraining objectives and adaptation methods call
# their encoder, head and discriminator separately, and DDP only synchronizes gradients of
# parameters used through the wrapped module's own forward. The process group (gloo on CPU, NCCL
# on GPU) is the one Ray Train's TorchTrainer sets up.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Dist:
    """This worker's place among ``world`` data-parallel workers (``Dist()`` is a single process)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, module: nn.Module) -> None:
        """Every worker starts from rank 0's parameters and buffers."""
        if self.world > 1:
            for tensor in module.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)

    def average_gradients(self, module: nn.Module) -> None:
        if self.world == 1:
            return
        # NOTE: every trainable parameter takes part, with zeros where this worker's batch left it
        # without a gradient (a fused model's input absent from the whole batch): the workers'
        # flattened gradients must line up element by element.
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            return
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        torch.distributed.all_reduce(flat)  # one collective per step
        flat /= self.world
        offset = 0
        for p in params:
            g = flat[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
            if p.grad is not None:
                p.grad.copy_(g)
            elif g.any():  # used by another worker only: its share of the average
                p.grad = g.clone()

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every worker's ``tensor`` (CPU, any number of rows), concatenated in rank order, on every worker."""
        if self.world == 1:
            return tensor
        parts = [None] * self.world
        torch.distributed.all_gather_object(parts, tensor.cpu())
        return torch.cat(parts).to(tensor.device)

    def same_on_all(self, fn: Callable[[], dict]) -> Callable[[], dict]:
        """``fn`` run on every worker, with rank 0's result returned everywhere, so that decisions
        taken on it (early stopping, best state) cannot differ by summation order between workers."""
        if self.world == 1:
            return fn

        @functools.wraps(fn)
        def shared() -> dict:
            box = [fn()]
            torch.distributed.broadcast_object_list(box, src=0)
            return box[0]
        return shared
