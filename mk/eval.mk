# The evaluation program (`llmops eval`, operator/llmops/evaluation/): its tests and its benchmark.
.PHONY: test-eval bench-eval

test-eval: venv ## unit tests of the evaluation program (scorers, dataset, client against the TGI simulator, main)
	$(PY) -m pytest -q tests/unit/test_eval_*.py

bench-eval: venv ## evaluation client throughput and CPU per request against the TGI simulator (100 ms, c=1/8/32/64)
	$(PY) -m llmops_dev.bench.evaluation
