# Prometheus for canary analysis: the adapter (operator/llmops/prom.py), the pure verdicts
# (operator/llmops/analysis/) and a real Prometheus for tests and `make dev`
# (devtools/llmops_dev/prometheus.py, Debian's `prometheus` package).
PROM_STATE ?= $(CURDIR)/.dev/prometheus

.PHONY: prometheus-install prometheus test-prom

prometheus-install: ## install Debian's prometheus package if missing (its own service stays stopped)
	@if ! command -v prometheus >/dev/null 2>&1; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
		systemctl disable --now prometheus >/dev/null 2>&1 || service prometheus stop >/dev/null 2>&1 || true; \
	fi
	@prometheus --version 2>&1 | head -1

prometheus: venv prometheus-install ## run a Prometheus scraping $(PROM_STATE)/tgi-targets.json (file_sd) until Ctrl-C
	$(PY) -m llmops_dev.prometheus --state-dir $(PROM_STATE)

test-prom: venv prometheus-install ## analysis + Prometheus adapter tests: unit, then against a real Prometheus (~20 s, no cluster)
	$(PY) -m pytest tests/unit/test_analysis_checks.py tests/unit/test_analysis_judge.py \
		tests/unit/test_analysis_queries.py tests/unit/test_prom.py -q
	$(PY) -m pytest tests/integration/test_prometheus_adapter.py tests/integration/test_prometheus_canary.py -q

.PHONY: bench-canary
bench-canary: venv cluster-build prometheus-install ## time from a canary starting to fail to the rollback decision (3 runs)
	PYTHONPATH=tests $(PY) tests/bench/canary_detection.py

.PHONY: bench-drift
bench-drift: venv prometheus-install ## time from a traffic shift to Drifted=True, and false positives over 100 stationary checks
	PYTHONPATH=tests $(PY) tests/bench/drift_detection.py
