"""Entity tagging of maintenance texts: BIO token classification on a text encoder, spans scored
by seqeval; domain-adaptive masked-language-model pretraining on unlabelled logs."""

from .spans import TaggedTexts, load_tagged, span_scores
from .tagger import TagConfig, Tagger, evaluate_tagger, fit_tagger, tag_texts

__all__ = ["TagConfig", "TaggedTexts", "Tagger", "evaluate_tagger", "fit_tagger", "load_tagged", "span_scores",
           "tag_texts"]
