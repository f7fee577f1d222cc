# loradrop — `make demo` runs the pipeline locally, `make test` runs every check.
# Both create their environments on first use (Python 3.13: found on PATH or under pyenv).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON313 := $(shell for p in python3.13 "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV := .venv
TOOLS := .venv-tools
PY := $(VENV)/bin/python
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
# sam build needs a python3.13 on PATH for the runtime; the project's venv provides it.
SAM := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(TOOLS)/bin/sam

.PHONY: help demo test lint typecheck template unit integration build bench reliability deploy delete clean \
	sam-image sam-demo test-docker

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: layers/deps/requirements.txt requirements-dev.txt requirements-nodeps.txt pyproject.toml
	@test -n "$(PYTHON313)" || { echo "Python 3.13 not found: install it (e.g. 'pyenv install 3.13') and retry." >&2; exit 1; }
	$(PYTHON313) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r layers/deps/requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

$(TOOLS)/.installed: requirements-tools.txt
	@test -n "$(PYTHON313)" || { echo "Python 3.13 not found: install it (e.g. 'pyenv install 3.13') and retry." >&2; exit 1; }
	$(PYTHON313) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet -r requirements-tools.txt
	@touch $@

demo: $(VENV)/.installed ## run the whole pipeline locally: ZIP in, weights, sample images and job record out
	$(VENV)/bin/loradrop demo

test: lint typecheck template build ## every check: ruff, mypy, cfn-lint, sam validate --lint, sam build, pytest
	@# Unit tests first, in runs of their own: their in-process moto resets state a local stack in the same process
	@# holds. On both cores: they share nothing but the source tree.
	$(PY) -m pytest --cov --cov-fail-under=0 --cov-report= -q -p no:cacheprovider -n 2 tests/unit
	@# Integration tests on both cores: each xdist worker starts a local stack of its own.
	$(PY) -m pytest --cov --cov-append --cov-report=term -q -p no:cacheprovider -n 2 --dist loadfile tests/integration

lint: $(VENV)/.installed ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed ## mypy
	$(VENV)/bin/mypy

template: $(VENV)/.installed $(TOOLS)/.installed ## cfn-lint, sam validate --lint, checkov
	$(TOOLS)/bin/cfn-lint template.yaml
	$(SAM) validate --lint --template template.yaml
	$(TOOLS)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml

build: $(VENV)/.installed $(TOOLS)/.installed ## sam build (functions and the dependencies layer)
	$(SAM) build --cached --parallel

test-docker: $(VENV)/.installed build ## the Docker tier: the build in Lambda's arm64 runtime through sam local (needs Docker)
	$(PY) -m pytest -q -p no:cacheprovider -rs tests/docker

sam-image: $(VENV)/.installed ## build the arm64 Lambda image sam local runs (as root: debootstrap, qemu; see README)
	$(PY) -m loradrop_local.sam.image

sam-demo: $(VENV)/.installed build ## the demo with every handler in SAM's emulators, from the build (needs Docker)
	$(VENV)/bin/loradrop demo --sam

unit: $(VENV)/.installed ## unit tests only
	$(PY) -m pytest -q tests/unit

integration: $(VENV)/.installed ## integration tests only (moto's server + WaveSpeed simulator over HTTP)
	$(PY) -m pytest -q -n 2 --dist loadfile tests/integration

reliability: $(VENV)/.installed ## fault and load scenarios at full scale; writes docs/reliability.md
	$(PY) -m loradrop_dev.reliability --scale full

bench: $(VENV)/.installed build ## benchmarks; writes docs/benchmarks.md
	$(PY) -m loradrop_dev.bench

deploy: build ## sam deploy --guided
	$(SAM) deploy --guided

delete: $(TOOLS)/.installed ## sam delete (buckets and table are retained: see README)
	$(SAM) delete

clean: ## remove environments and build output
	rm -rf $(VENV) $(TOOLS) .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage .loradrop
