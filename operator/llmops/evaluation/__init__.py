"""The evaluation program run inside evaluation Jobs: datasets, the TGI client, scorers, thresholds, report.

Modules: `dataset` (format and sources),
`client` (requests through huggingface_hub), `completion` (what one request produced), `scorers`,
`safety` and `bias` (pure scoring), `metrics` (per-sample and run metrics), `thresholds`
(verdicts), `report` (summary, exit codes, per-sample lines), `main` (the `llmops eval` command)
and `bench` (the client benchmark, `make bench-eval`).

The metric names are the API's (`llmops.api.metric_names`): the API owns the spec's vocabulary
and never imports this package (an import-linter contract in pyproject.toml).
"""
