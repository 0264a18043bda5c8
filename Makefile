# llmops-operator. The README's two commands: `make dev` and `make test`.
# Topic-specific targets live in mk/*.mk (one file per area, so parallel work does not collide).
SHELL := /bin/bash
PY ?= $(CURDIR)/.venv/bin/python
# import-linter's console script, installed beside $(PY) by the dev distribution.
LINT_IMPORTS ?= $(dir $(PY))lint-imports
VENV_STAMP := .venv/.installed-$(shell cat pyproject.toml devtools/pyproject.toml | sha256sum | cut -c1-12)
export LLMOPS_REPO := $(CURDIR)

.PHONY: help venv test test-unit test-integration lint typecheck cluster-build cluster-up cluster-down dev crds

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-20s %s\n", $$1, $$2}'

$(VENV_STAMP): pyproject.toml devtools/pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e . -e ./devtools
	@rm -f .venv/.installed-*; touch $@

venv: $(VENV_STAMP) ## create .venv with the operator (llmops) and the dev tools (llmops_dev), both editable

lint: venv typecheck ## ruff, mypy and the layer contracts (import-linter, [tool.importlinter] in pyproject.toml)
	$(PY) -m ruff check operator devtools tests
	$(PY) -m ruff format --check operator devtools tests
	$(LINT_IMPORTS) --no-cache

typecheck: venv ## mypy --strict on llmops, llmops_dev and tests/testkit (configuration in pyproject.toml)
	$(PY) -m mypy

# The unit tier shares nothing between its files, so it runs on every core (a file stays on one
# worker: its module fixtures, the wheel's build, are made once). The integration tier runs in two
# workers, each with its own local cluster, Prometheus and operator: its tests mostly wait on
# timers, so two sessions fill 2 cores; more would mostly add clusters. Against an existing
# cluster (LLMOPS_TEST_KUBECONFIG) it runs in one process, since each worker starts an operator.
UNIT_PYTEST := $(PY) -m pytest tests/unit -q -n auto --dist loadfile
INTEGRATION_WORKERS ?= $(if $(LLMOPS_TEST_KUBECONFIG),0,2)
INTEGRATION_PYTEST := $(PY) -m pytest tests/integration -q -n $(INTEGRATION_WORKERS) --dist loadfile

test-unit: venv cluster-build ## fast tests, no cluster (the chart tests use the built helm and kubectl)
	$(UNIT_PYTEST)

test-integration: venv cluster-build prometheus-install ## tests against local clusters (one per worker, INTEGRATION_WORKERS=2)
	$(INTEGRATION_PYTEST)

test: venv cluster-build prometheus-install typecheck ## every test: lint, types, layer contracts, unit, integration
	$(PY) -m ruff check operator devtools tests
	$(PY) -m ruff format --check operator devtools tests
	$(LINT_IMPORTS) --no-cache
	@# The integration tier runs even when the unit tier failed; the target fails if either did.
	@unit=0; $(UNIT_PYTEST) --durations=10 || unit=$$?; \
	$(INTEGRATION_PYTEST) --durations=25 && exit $$unit

cluster-build: ## build kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok, helm from Go modules (cached)
	@bash cluster/build.sh >/dev/null

cluster-up: venv cluster-build ## start the local cluster in the background and print how to use it
	$(PY) -m llmops_dev.cluster up

cluster-down: venv ## stop the local cluster started by cluster-up
	$(PY) -m llmops_dev.cluster down

dev: venv cluster-build prometheus-install ## run the operator against the local cluster with a sample (kubectl get llmd -n llmops-dev -w; SAMPLE=manifests/samples/qwen-vllm-canary.yaml for vLLM)
	$(PY) -m llmops_dev.dev $(if $(SAMPLE),--sample $(SAMPLE))

-include mk/*.mk
