# Packaging: the Helm chart, the static manifests generated from it, the Argo CD health check
# and the container image. The chart is the source; `make manifests` regenerates the rest.
CHART := charts/llmops-operator
HELM = $$(bash cluster/build.sh)/helm

.PHONY: manifests manifests-check chart-lint test-packaging test-install image argocd-fixtures

manifests: venv cluster-build ## regenerate the chart's CRD templates (from crds/), manifests/install.yaml, base, overlays, argocd-cm
	$(PY) -m llmops_dev.packaging

manifests-check: venv cluster-build ## fail if a generated packaging file is out of date
	$(PY) -m llmops_dev.packaging --check

argocd-fixtures: venv cluster-build prometheus-install ## re-record tests/fixtures/recorded_statuses.yaml (statuses of real runs the Argo CD health check is tested on)
	LLMOPS_RECORD_STATUSES=1 $(PY) -m pytest -q tests/integration/test_argocd_recorded_statuses.py

chart-lint: cluster-build ## helm lint --strict the chart
	$(HELM) lint --strict $(CHART)

test-packaging: venv cluster-build ## unit tests of the chart, manifests, Argo CD health check and Dockerfile (seconds)
	$(PY) -m pytest -q tests/unit/test_chart_*.py tests/unit/test_argocd_*.py tests/unit/test_dockerfile.py

test-install: venv cluster-build ## install the chart and the manifests on the local cluster (helm, kubectl, RBAC)
	$(PY) -m pytest -q tests/integration/test_install_*.py

image: ## build the operator image (needs a Docker engine; not available on the dev machines)
	docker build -t ghcr.io/llmops-io/llmops-operator:$$(awk '/^appVersion:/{gsub(/"/,"",$$2);print $$2}' $(CHART)/Chart.yaml) .

.PHONY: test-dashboards
test-dashboards: venv cluster-build prometheus-install ## the Grafana dashboards: chart tests, then every query and alert rule against a real Prometheus and promtool (~30 s, no cluster)
	$(PY) -m pytest -q tests/unit/test_chart_dashboards.py tests/integration/test_dashboards_prometheus.py
