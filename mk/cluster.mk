.PHONY: bench-cluster bench-cluster-cold
bench-cluster: venv cluster-build ## warm start-to-ready time and memory of the local cluster (3 runs)
	$(PY) -m llmops_dev.cluster.bench --runs 3

bench-cluster-cold: venv ## as bench-cluster, plus a cold build with empty Go build caches (minutes)
	$(PY) -m llmops_dev.cluster.bench --runs 3 --cold

# Scale: N LLMDeployments created at once against the floor of one `kubectl apply --server-side`
# of the same children, then an idle window (objects changed, API requests, RSS).
SCALE ?= 100
FLOOR ?= 1
.PHONY: bench-scale
bench-scale: venv cluster-build ## N=$(SCALE) LLMDeployments at once vs kubectl apply of their children; idle writes, requests, RSS (FLOOR=0: the operator's turn only)
	$(PY) -m llmops_dev.bench.scale --scale $(SCALE) $(if $(filter 0,$(FLOOR)),--no-floor)
