"""Packaging: the generators that keep the three install paths in step with one source.

The chart (``charts/llmops-operator``) is the source. From it and from ``crds/*.yaml``:

- ``chart_crds``      the chart's CRD templates: verbatim copies of ``crds/*.yaml`` plus Helm
                      conditionals (pure);
- ``json_patch``      minimal JSON-patch (RFC 6902) operations between two objects (pure);
- ``static``          ``manifests/install.yaml``, the kustomize base and the overlays, split
                      from ``helm template`` output (pure);
- ``argocd``          the argocd-cm snippet that embeds the LLMDeployment health check (pure);
- ``helm``            running ``helm template`` (I/O);
- ``generate``        reading the sources, computing every generated file, writing or checking
                      them (I/O; ``python -m llmops_dev.packaging [--check]``, ``make manifests``).
"""
