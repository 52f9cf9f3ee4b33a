# One-command set-up and checks. `make test` and `make demo` work on a fresh clone with only python3.
PYTHON ?= python3
AIRFLOW_VERSION ?=
ifeq ($(AIRFLOW_VERSION),)
VENV ?= .venv
AIRFLOW_PIN :=
else
VENV ?= .venv-airflow-$(AIRFLOW_VERSION)
AIRFLOW_PIN := apache-airflow==$(AIRFLOW_VERSION)
endif
# The common.messaging provider (the `sms` scheme's extra) needs Airflow 3.0.1+: an Airflow 2 venv goes without.
ifeq ($(filter 2.%,$(AIRFLOW_VERSION)),)
EXTRAS := dev,messaging
else
EXTRAS := dev
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)
# Ports, all on 127.0.0.1: `make demo SANDBOX_PORT=9000 AIRFLOW_PORT=9001`. 0 picks a free one; the demo
# moves the sandbox to a free port when SANDBOX_PORT is taken.
SANDBOX_PORT ?= 8765
AIRFLOW_PORT ?= 0

.PHONY: venv test lint typecheck unit demo demo-serve sandbox bench dist clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[$(EXTRAS)]' $(AIRFLOW_PIN)
	touch $@

lint: venv
	$(BIN)/ruff check airflow_provider_sms tests example_dags demo benchmarks
	$(BIN)/ruff format --check airflow_provider_sms tests example_dags demo benchmarks

typecheck: venv
	$(BIN)/mypy airflow_provider_sms

unit: venv
	$(BIN)/python -m pytest

test: lint typecheck unit

demo: venv
	$(BIN)/python demo/run_demo.py --port $(SANDBOX_PORT) --airflow-port $(AIRFLOW_PORT)

demo-serve: venv
	$(BIN)/python demo/run_demo.py --serve --port $(SANDBOX_PORT) --airflow-port $(AIRFLOW_PORT)

bench: venv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev,bench]'
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/alerts.py
	$(BIN)/python benchmarks/opt_outs.py

sandbox: venv
	$(BIN)/airflow-sms-sandbox --host 127.0.0.1 --port $(SANDBOX_PORT)

# The wheel and the sdist under dist/ (what `pip install dist/*.whl` takes).
dist: venv
	rm -rf dist
	$(BIN)/uv build --out-dir dist

clean:
	rm -rf .venv .venv-airflow-* .pytest_cache .mypy_cache .ruff_cache .demo dist
