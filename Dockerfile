# syntax=docker/dockerfile:1
# The llmops-operator image: the operator (`llmops run`) and the programs its Jobs run
# (`llmops download` in the cache Job, `llmops eval` in evaluation Jobs), one image so a
# revision of the operator always runs the matching evaluation code.
#
# Base image pin: a full Python and Debian version tag, not a floating one (3.11-slim). A
# digest pin (@sha256:...) is stronger still but cannot be looked up without registry access;
# CI with registry access should resolve this tag to its digest and keep it current
# (Renovate/Dependabot "docker" manager).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: install the package and its dependencies into a self-contained virtualenv
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/llmops
WORKDIR /src
# Metadata first, so the dependency layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
COPY operator/ ./operator/
RUN /opt/llmops/bin/pip install --no-compile . \
 && /opt/llmops/bin/python -m compileall -q /opt/llmops/lib

# --- runtime: the virtualenv only; no compiler, no pip cache, no source tree
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="llmops-operator" \
      org.opencontainers.image.description="Kubernetes operator for self-hosted LLMs (LLMDeployment)" \
      org.opencontainers.image.source="https://github.com/llmops-io/llmops-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed, numeric, unprivileged user: runAsNonRoot can verify it, and the chart's
# podSecurityContext (runAsUser 65532) matches it.
RUN groupadd --system --gid 65532 llmops \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin llmops
COPY --from=build /opt/llmops /opt/llmops
ENV PATH=/opt/llmops/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
# kopf's health endpoint (--liveness-port) and the operator's metrics (--metrics-port).
EXPOSE 8080 9090
ENTRYPOINT ["llmops"]
CMD ["run", "--all-namespaces"]
