"""llmops-operator: the `LLMDeployment` operator and the programs its Jobs run.

Subpackages: `api` (the spec and status models, the CRD), `engines` (serving engines), `render`
(the children as dicts), `lifecycle` (`plan()`), `analysis` (canary checks) form the pure core;
`kube`, `prom`, `reconciler`, `handlers` and `workqueue` connect it to the cluster; `evaluation`
and `download` are the programs of the evaluation and cache Jobs; `cli` is the `llmops` command.
The layers are import-linter contracts in pyproject.toml.
"""
