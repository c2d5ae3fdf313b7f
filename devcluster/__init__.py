"""Propylon's development cluster: a real Kubernetes control plane on one machine without
containers (see README.md in this folder). Test and development infrastructure only; not
part of the `propylon` package."""
