.PHONY: bench-cluster bench-cluster-cold
bench-cluster: venv cluster-build ## warm start-to-ready time and memory of the local cluster (3 runs)
	$(PY) -m llmops_dev.cluster.bench --runs 3

bench-cluster-cold: venv ## as bench-cluster, plus a cold build with empty Go build caches (minutes)
	$(PY) -m llmops_dev.cluster.bench --runs 3 --cold
