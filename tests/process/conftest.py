"""A catalog holding the vendored CNC milling sample (18 runs: set-points, outcomes, 25 s of signals)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cnc_catalog(tmp_path_factory):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path_factory.mktemp("cnc") / "catalog")
    catalog.ingest("cnc", create_reader("cnc-mill")(sample_path("cnc_mill")), progress=False)
    return catalog


@pytest.fixture(scope="session")
def cnc_data(cnc_catalog):
    from transferline.process import load_process_data

    return load_process_data(cnc_catalog, "cnc")


@pytest.fixture(scope="session")
def cnc_model(cnc_data):
    from transferline.process import SurrogateConfig, fit_surrogate

    return fit_surrogate(cnc_data, SurrogateConfig(members=8, epochs=200))
