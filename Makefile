# Every target installs what it needs into .venv when it is missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NTREF  ?= /tmp/ntref
PYTEST_ARGS ?=

.PHONY: demo test test-all lint pytest bench golden clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m widelimits demo

test: lint pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check widelimits tests benchmarks notebooks

# The default suite (notebooks in smoke mode are part of it: tests/test_notebooks.py).
pytest: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# Also the exhaustive Monte Carlo variants (marked slow).
test-all: lint $(STAMP)
	$(PY) -m pytest -n 2 -m "" $(PYTEST_ARGS)

# Side-by-side timings against neural-tangents 0.6.5 in its own pinned venv.
bench: $(STAMP)
	bash ../shared/reference/ntref_env.sh $(NTREF)
	$(PY) benchmarks/analytic_kernels.py --ntref $(NTREF)/bin/python
	$(PY) benchmarks/conv_kernels.py --ntref $(NTREF)/bin/python
	$(PY) benchmarks/empirical_ntk.py --ntref $(NTREF)/bin/python
	$(PY) benchmarks/dynamics.py --ntref $(NTREF)/bin/python
	$(PY) benchmarks/dmft.py
	$(PY) benchmarks/ensembles.py

# Regenerate tests/reference/*.npz with neural-tangents (not needed by `make test`).
golden:
	bash ../shared/reference/ntref_env.sh $(NTREF)
	$(NTREF)/bin/python tests/reference/make_golden.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis figures
