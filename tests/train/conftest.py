"""Fixtures of the training tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def sample_catalog(tmp_path_factory):
    """A fresh catalog holding the vendored C-MAPSS sample as ``cmapss-sample``."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path_factory.mktemp("cat"))
    catalog.ingest("cmapss-sample", create_reader("cmapss")(sample_path("cmapss")))
    return catalog
