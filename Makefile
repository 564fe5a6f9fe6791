# Two commands: `make run` (demo samples -> analyses -> limits) and `make test`.
# Both create .venv and install the package into it on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO := demo
WORKERS ?= 2

.PHONY: run test install clean bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing belle-rare and its dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(PY) -m pip install --quiet --upgrade pip > $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@# the editable install's only backend message is setuptools' "Editable installation" notice: kept in the log
	@$(PY) -m pip install --quiet --prefer-binary -e ".[test,cluster]" >> $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n $(WORKERS) -q

run: $(STAMP)
	$(VENV)/bin/belle-rare demo --out $(DEMO) --workers $(WORKERS)

# every installed search: events/s/core, / uproot read, dask 1 -> 2, peak RSS 1x / 10x, chunk output (benchmarks/suite.py)
bench: $(STAMP)
	$(PY) benchmarks/bench_generation.py
	$(PY) benchmarks/suite.py $(BENCH_ARGS)

clean:
	rm -rf $(DEMO) .pytest_cache
