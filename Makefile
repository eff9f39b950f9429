# Two commands do all the set-up on a fresh machine:  make demo  and  make test.
# Both create (or reuse) the virtual environment .venv. torch==2.13.0 is installed first when no
# torch is present: on these machines it is a local CPU wheel, while an unpinned torch would pull a
# multi-GB CUDA build. The package itself asks for torch>=2.2, which the pin satisfies.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cvlearn-installed
DOCS_STAMP := $(VENV)/.cvlearn-docs-installed

.PHONY: demo quickstart test test-all bench lint docs dist wheel-check clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	touch $(STAMP)

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]" build twine
	touch $(DOCS_STAMP)

demo quickstart: $(STAMP)
	$(VENV)/bin/cvlearn quickstart --out quickstart_out --force  # a rerun keeps the last one in quickstart_out/bck.<n>/

test: $(STAMP)
	$(VENV)/bin/ruff check cvlearn tests benchmarks tools
	PYTHONPATH=tools $(VENV)/bin/lint-imports --no-cache  # the architecture contracts in pyproject.toml
	$(PY) -m pytest -m "not slow" --durations=20

test-all: $(STAMP)
	$(PY) -m pytest --durations=20

lint: $(STAMP)
	$(VENV)/bin/ruff check cvlearn tests benchmarks tools
	PYTHONPATH=tools $(VENV)/bin/lint-imports --no-cache

# The documentation site, warnings as errors: docs/_build/html/index.html. The gallery runs the
# tutorials in their fast mode (a few minutes on 2 cores).
docs: $(DOCS_STAMP)
	$(VENV)/bin/sphinx-build -b html -W --keep-going -j 1 docs docs/_build/html

# An sdist and a wheel in dist/, checked by twine. build/ and the egg-info are removed first: their
# stale file lists would put files into the wheel that package-data no longer declares.
dist: $(DOCS_STAMP)
	rm -rf dist build cvlearn.egg-info
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

# The wheel installed into a fresh venv outside the source tree, then `cvlearn quickstart` from it.
wheel-check: dist
	PYTHON=$(PYTHON) bash .ci/check_wheel.sh dist/cvlearn-*.whl

clean:
	rm -rf $(VENV) quickstart_out demo_out .pytest_cache dist docs/_build docs/generated docs/gallery
