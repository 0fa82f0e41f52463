# Two commands for a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test bench compat clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

demo: $(PY)
	$(PY) -m pip install --quiet -e .
	$(PY) -m jitbridge compile jitbridge.kernels
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/demo.py

test: $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks compare against NumPy with OpenBLAS's core-type override lifted (never in tests).
bench: $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) -m pytest benchmarks --benchmark-only -p no:cacheprovider

# numba's own tests, under numba and again with numba.jit/njit swapped for jitbridge.jit in test
# code only (tools/compat/); minutes, so not part of `make test`. COMPAT_ARGS: e.g. test_tuples --jobs 1
COMPAT_ARGS ?=
compat: $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) tools/compat/run.py $(COMPAT_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks *.egg-info
