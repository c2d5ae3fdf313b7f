"""The backend the cluster tests route to: a Service and a Deployment of the Gateway API
conformance echo server (the dev cluster's node agent runs it as the echo-basic binary),
which answers with the pod's name and namespace and the request it saw."""

from __future__ import annotations

ECHO_IMAGE = "registry.k8s.io/gateway-api/echo-basic:v1.6.3"


def echo_backend(name: str) -> str:
    """YAML documents (each after a `---`) for Service and Deployment `name` in
    `default`, port 3000, pods labelled app=`name`."""
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 3000}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: echo
        image: {ECHO_IMAGE}
        env:
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        - {{name: NAMESPACE, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
        readinessProbe: {{httpGet: {{path: /, port: 3000}}, periodSeconds: 2}}
"""
