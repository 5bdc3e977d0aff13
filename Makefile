# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: the CPU wheel this machine has; an unpinned torch pulls CUDA packages.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/eiex demo --out out/demo --force

# two workers, a test file (or the files sharing the trained models, tests/conftest.py) at a time:
# the suite is mostly single-threaded tools
test: install
	$(PY) -m pytest -q -n 2 --dist loadgroup

clean:
	rm -rf out build .pytest_cache
