# tensorserve: `make serve` and `make test` are all a new user needs.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REST_PORT ?= 8501
GRPC_PORT ?= 8500
DEMO_DIR ?= demo_models

.PHONY: setup serve test lint bench clean screenshot fuzz soak

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(PY) -m tensorserve.demo export --dir $(DEMO_DIR)
	$(PY) -m tensorserve.demo print-usage --dir $(DEMO_DIR) --port $(GRPC_PORT) --rest_api_port $(REST_PORT)
	exec $(PY) -m tensorserve --port=$(GRPC_PORT) --rest_api_port=$(REST_PORT) \
		--model_config_file=$(DEMO_DIR)/models.config \
		--monitoring_config_file=$(DEMO_DIR)/monitoring.config

test: $(STAMP)
	$(PY) -m pytest -q

# Refresh the README's dashboard screenshot (docs/dashboard.png) from the browser test.
screenshot: $(STAMP)
	DASHBOARD_SCREENSHOT=docs/dashboard.png $(PY) -m pytest -q tests/integration/test_dashboard.py -k charts

# Coverage-guided fuzzing of every client-facing decoder (fuzz/targets.py), SECONDS per
# target, from the committed seeds in fuzz/corpus; not part of `make test`.
SECONDS ?= 60
fuzz: $(STAMP)
	$(PY) -m pip install --quiet atheris==3.0.0
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m fuzz.run --seconds $(SECONDS)

lint: $(STAMP)
	$(VENV)/bin/ruff check tensorserve tests benchmarks fuzz
	$(VENV)/bin/ruff format --check tensorserve tests benchmarks fuzz
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Full run (about 30 min on the 2-vCPU VM) rewrites BENCHMARKS.md; a subset, e.g.
# make bench BENCH_ARGS="--quick --only tensorserve,litserve --scenarios mlp,memory"
# (benchmarks/run.py --help lists the subjects and scenarios).
BENCH_ARGS ?= --write BENCHMARKS.md
MINUTES ?= 30
bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

# 30 minutes of mixed traffic while versions, config and worker processes change (BENCHMARKS.md).
soak: $(STAMP)
	$(PY) benchmarks/soak.py --minutes $(MINUTES)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache

# Container image (Dockerfile). CONTAINER_ENGINE: podman if installed, else docker.
# BASE_IMAGE: the Dockerfile's default (python:3.11-slim-bookworm) when empty.
CONTAINER_ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
IMAGE ?= tensorserve:$(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' tensorserve/__init__.py)
BASE_IMAGE ?=
LOCK_FILES ?= requirements.lock
IMAGE_BUILD_FLAGS ?=
IMAGE_CONTEXT ?= .

.PHONY: image test-deploy

image:
	$(CONTAINER_ENGINE) build \
		$(if $(filter podman,$(notdir $(CONTAINER_ENGINE))),--format docker) \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
		--build-arg LOCK_FILES="$(LOCK_FILES)" $(IMAGE_BUILD_FLAGS) \
		-t $(IMAGE) -f $(CURDIR)/Dockerfile $(IMAGE_CONTEXT)

# The deploy tier (tests/deploy): installs podman/runc/debootstrap and the pinned tools if
# absent, builds a debootstrap base and the image offline (tests/deploy/conftest.py), runs
# the containers with podman, helm lint/template, kubernetes-validate, KServe CRD checks.
test-deploy: $(STAMP)
	bash tests/deploy/prepare.sh
	CONTAINERS_CONF=$(CURDIR)/tests/deploy/containers.conf TENSORSERVE_DEPLOY_TESTS=1 \
		HELM=$(CURDIR)/build/deploy/bin/helm $(PY) -m pytest -q tests/deploy
