# The TGI simulator (devtools/llmops_dev/tgisim/): TGI's HTTP API without a GPU.
TGISIM_PORT ?= 8080
TGISIM_ARGS ?=

.PHONY: tgisim test-tgisim
tgisim: venv ## run a TGI simulator on 127.0.0.1:$(TGISIM_PORT) (extra flags: TGISIM_ARGS="--behaviour-dir d")
	$(PY) -m llmops_dev.tgisim --host 127.0.0.1 --port $(TGISIM_PORT) $(TGISIM_ARGS)

test-tgisim: venv ## the TGI simulator's unit tests (real huggingface_hub client, seconds)
	$(PY) -m pytest tests/unit/test_tgisim.py tests/unit/test_tgisim_behaviour.py \
		tests/unit/test_tgisim_metrics.py tests/unit/test_tgisim_shapes.py -q
