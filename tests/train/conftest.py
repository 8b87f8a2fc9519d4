"""Fixtures of the training tests."""

from __future__ import annotations

import pytest

from ..conftest import cmapss_sample_catalog


@pytest.fixture(scope="module")
def sample_catalog(tmp_path_factory):
    """A fresh catalog holding the vendored C-MAPSS sample as ``cmapss-sample``."""
    return cmapss_sample_catalog(tmp_path_factory.mktemp("cat"))
