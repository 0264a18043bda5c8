# The LLMDeployment API: the CRD is generated from the pydantic models in operator/llmops/api.
.PHONY: crds
crds: venv ## regenerate crds/llmops.io_llmdeployments.yaml from llmops/api (commit the result)
	$(PY) -m llmops.api.crd > crds/llmops.io_llmdeployments.yaml.tmp
	mv crds/llmops.io_llmdeployments.yaml.tmp crds/llmops.io_llmdeployments.yaml
