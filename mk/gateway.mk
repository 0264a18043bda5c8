# The gateway (`llmops gateway`, operator/llmops/gateway/): its tests and its benchmark.
.PHONY: test-gateway bench-gateway
BENCH_GATEWAY_ARGS ?=

test-gateway: venv ## the gateway's unit tests (a real TGI simulator and huggingface_hub client, seconds), capture and redaction included
	$(PY) -m pytest tests/unit/test_gateway.py tests/unit/test_render_gateway.py tests/unit/test_gateway_capture.py tests/unit/test_gateway_redact.py tests/unit/test_gateway_upstream.py -q

bench-gateway: venv ## gateway overhead at concurrency 64, in a realistic regime (0.5 s answers, CPU not saturated) and a saturated one (50 ms, worst case on shared cores): throughput share, added latency, CPU/request, and with capture at sampleRate 1.0
	$(PY) -m llmops_dev.bench.gateway $(BENCH_GATEWAY_ARGS)
