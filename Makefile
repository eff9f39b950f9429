# Two commands do all the set-up on a fresh machine:  make demo  and  make test.
# Both create (or reuse) the virtual environment .venv. torch==2.13.0 is installed first when no
# torch is present: on these machines it is a local CPU wheel, while an unpinned torch would pull a
# multi-GB CUDA build. The package itself asks for torch>=2.2, which the pin satisfies.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cvlearn-installed

.PHONY: demo quickstart test test-all bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	touch $(STAMP)

demo quickstart: $(STAMP)
	$(VENV)/bin/cvlearn quickstart --out quickstart_out

test: $(STAMP)
	$(VENV)/bin/ruff check cvlearn tests benchmarks
	$(PY) -m pytest -m "not slow" --durations=20

test-all: $(STAMP)
	$(PY) -m pytest --durations=20

lint: $(STAMP)
	$(VENV)/bin/ruff check cvlearn tests benchmarks

clean:
	rm -rf $(VENV) quickstart_out demo_out .pytest_cache
