# The gateway (`llmops gateway`, operator/llmops/gateway/): its tests and its benchmark.
.PHONY: test-gateway bench-gateway
BENCH_GATEWAY_ARGS ?=

test-gateway: venv ## the gateway's unit tests (a real TGI simulator and huggingface_hub client, seconds)
	$(PY) -m pytest tests/unit/test_gateway.py tests/unit/test_render_gateway.py -q

bench-gateway: venv ## gateway overhead at concurrency 64 against the simulator: throughput share, added latency, CPU/request
	$(PY) -m llmops_dev.bench.gateway $(BENCH_GATEWAY_ARGS)
