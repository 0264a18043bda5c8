"""The evaluation program run inside evaluation Jobs: datasets, the TGI client, scorers, thresholds, report.

Modules: `metric_names` (the metric names shared with the API), `dataset` (format and sources),
`client` (requests through huggingface_hub), `completion` (what one request produced), `scorers`,
`safety` and `bias` (pure scoring), `metrics` (per-sample and run metrics), `thresholds`
(verdicts), `report` (summary, exit codes, per-sample lines), `main` (the `llmops eval` command)
and `bench` (the client benchmark, `make bench-eval`).

This file imports nothing: `llmops.api` imports `metric_names` and must not pull in the HTTP client.
"""
