"""Source ranking: which pretrained encoder to fine-tune for a target, scored without fine-tuning."""

from .run import METHODS, Ranked, rank_candidates
from .scores import h_score, knn_score, leep, linear_score, logme

__all__ = ["METHODS", "Ranked", "h_score", "knn_score", "leep", "linear_score", "logme", "rank_candidates"]
