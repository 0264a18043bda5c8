"""Development tools for llmops-operator: never shipped in the operator's wheel or image.

- ``cluster``: the local Kubernetes control plane built from Go modules (``make cluster-up``).
- ``kubelet``: the fake kubelet that runs the operator's pods as local processes, with a storage
  provisioner and a Service proxy.
- ``tgisim``: a process that speaks TGI's HTTP API and exports TGI's metrics (no GPU needed).
- ``fakehub``: a simulated Hugging Face Hub for the download and evaluation programs.
- ``prometheus``: a real Prometheus (Debian's package) scraping the simulators.
- ``loadgen``: steady traffic through the Service proxy.
- ``bench``: benchmarks (``make bench-*``); ``packaging``: generators of the install manifests.
- ``dev``: ``make dev``, the whole loop on the local cluster.
"""
