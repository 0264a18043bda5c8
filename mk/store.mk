# The capture store (`llmops capture-store`, operator/llmops/capture_store/): its tests and its benchmark.
.PHONY: test-store bench-store
BENCH_STORE_ARGS ?=

test-store: venv ## the capture store's unit tests: segments, torn tails, retention, size cap, full disk, auth, filters (seconds)
	$(PY) -m pytest tests/unit/test_capture_store.py tests/unit/test_capture_plan.py -q

bench-store: venv ## capture store records/second written with fsync batching vs fsync per batch (32 senders, 50-record batches)
	$(PY) -m llmops_dev.bench.store $(BENCH_STORE_ARGS)
