"""Samples by catalog kind: ``runs`` and ``waveforms`` → :class:`~transferline.data.Windows`,
``images`` → :class:`~transferline.data.images.ImageSamples`, ``text`` →
:class:`~transferline.data.text.TextSamples`. Every training path reads its data
through :func:`load_samples`, so a dataset of a kind it cannot learn from is refused by name."""

from __future__ import annotations

from ..catalog import Catalog
from .images import load_images
from .inputs import ImageInput, TextInput
from .specs import WindowSpec, load_windows


def _windows(catalog, dataset, spec, *, split, domains, last_only, classes):
    return load_windows(catalog, dataset, spec, split=split, domains=domains, last_only=last_only, classes=classes)


def _images(catalog, dataset, spec, *, split, domains, last_only, classes):
    return load_images(catalog, dataset, spec, split=split, domains=domains, classes=classes)


def _texts(catalog, dataset, spec, *, split, domains, last_only, classes):
    from .text import load_texts

    return load_texts(catalog, dataset, spec, split=split, domains=domains, classes=classes)


# kind → (loader, the spec type it takes, what to call that spec in an error)
SAMPLES = {"runs": (_windows, WindowSpec, "a window spec"), "waveforms": (_windows, WindowSpec, "a window spec"),
           "images": (_images, ImageInput, "an image input spec"), "text": (_texts, TextInput, "a text input spec")}


def load_samples(catalog: Catalog, dataset: str, spec: WindowSpec | ImageInput, *, split: str | None = None,
                 domains: list[str] | None = None, last_only: bool = False, classes: list[str] | None = None):
    """The samples of ``dataset`` (one split, some domains) as its catalog kind's sample type."""
    loader = check_kind(catalog, dataset, spec)
    return loader(catalog, dataset, spec, split=split, domains=domains, last_only=last_only, classes=classes)


def check_kind(catalog: Catalog, dataset: str, spec: WindowSpec | ImageInput):
    """The loader for ``dataset``'s kind; an error naming the kind where ``spec`` cannot read it."""
    kind = catalog.manifest(dataset).kind
    if kind not in SAMPLES:
        raise ValueError(f"dataset {dataset!r} holds {kind} data, which training cannot read yet; it reads "
                         f"{', '.join(SAMPLES)}")
    loader, spec_type, what = SAMPLES[kind]
    if not isinstance(spec, spec_type) or (isinstance(spec, WindowSpec) and spec.kind != kind):
        given = f"window spec {spec.name!r} (for {spec.kind})" if isinstance(spec, WindowSpec) else type(spec).__name__
        raise ValueError(f"dataset {dataset!r} holds {kind}: it needs {what}"
                         f"{f' for {kind}' if spec_type is WindowSpec else ''}, not {given}")
    return loader
