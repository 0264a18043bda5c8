# Chaos (issue 10): the operator SIGKILLed through whole revision pipelines and the retrain loop,
# control-plane parts and Prometheus restarted in place; a small sample runs in `make test`
# (tests/integration/test_chaos.py).
KILLS ?= 50
.PHONY: chaos
chaos: venv cluster-build prometheus-install ## $(KILLS) operator kills + apiserver/etcd/Prometheus restarts through gate → canary → promote → retrain loop; invariants, summary
	PYTHONPATH=tests $(PY) tests/bench/chaos.py --kills $(KILLS)
