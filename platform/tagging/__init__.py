"""Entity tagging of maintenance texts: BIO token classification on a text encoder, spans scored
by seqeval; domain-adaptive masked-language-model pretraining on unlabelled logs."""

from .spans import TaggedTexts, load_tagged, span_scores

_TAGGER = ("TagConfig", "Tagger", "evaluate_tagger", "fit_tagger", "tag_texts")


def __getattr__(name: str):
    # NOTE: the tagger (torch) loads on first use: a serving replica imports .spans alone
    if name in _TAGGER:
        from . import tagger

        return getattr(tagger, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TagConfig", "TaggedTexts", "Tagger", "evaluate_tagger", "fit_tagger", "load_tagged", "span_scores",
           "tag_texts"]
