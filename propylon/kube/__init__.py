"""Kubernetes mode's edges: API client, list+watch source, status sink, leader election."""
