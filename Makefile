# tensorserve: `make serve` and `make test` are all a new user needs.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REST_PORT ?= 8501
GRPC_PORT ?= 8500
DEMO_DIR ?= demo_models

.PHONY: setup serve test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(PY) -m tensorserve.demo export --dir $(DEMO_DIR)
	$(PY) -m tensorserve.demo print-usage --dir $(DEMO_DIR) --rest_api_port $(REST_PORT)
	exec $(PY) -m tensorserve --port=$(GRPC_PORT) --rest_api_port=$(REST_PORT) \
		--model_config_file=$(DEMO_DIR)/models.config \
		--monitoring_config_file=$(DEMO_DIR)/monitoring.config

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check tensorserve tests benchmarks
	$(VENV)/bin/ruff format --check tensorserve tests benchmarks
	$(VENV)/bin/mypy

BENCH_ARGS ?= --write BENCHMARKS.md
bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
