"""Pretraining objectives by name: supervised, masked, contrastive, gan."""

from ._base import Objective, create_objective, list_objectives, register_objective
from .contrastive import augment
from .masked import random_mask, subsequence_mask

__all__ = ["Objective", "augment", "create_objective", "list_objectives", "random_mask", "register_objective",
           "subsequence_mask"]
