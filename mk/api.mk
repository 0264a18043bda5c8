# The LLMDeployment API: the CRD is generated from the pydantic models in operator/llmops/api.
.PHONY: crds
crds: venv cluster-build ## regenerate crds/ from llmops/api, and everything packaged from it (commit the result)
	$(PY) -m llmops.api.crd > crds/llmops.io_llmdeployments.yaml.tmp
	mv crds/llmops.io_llmdeployments.yaml.tmp crds/llmops.io_llmdeployments.yaml
	$(PY) -m llmops_dev.packaging
