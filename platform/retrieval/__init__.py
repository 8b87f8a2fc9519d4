"""Problem → fix retrieval over maintenance logs: BM25, a zero-shot text encoder, and the encoder
contrastively fine-tuned on (problem, action) pairs, measured by recall@k and MRR."""

from .dense import Embedder, PairConfig, dense_scores, evaluate_dense, fit_pairs
from .pairs import BM25, Pairs, load_pairs, rank_metrics

__all__ = ["BM25", "Embedder", "PairConfig", "Pairs", "dense_scores", "evaluate_dense", "fit_pairs", "load_pairs",
           "rank_metrics"]
