"""The dev cluster's node agent: registers a Node, runs the pods bound to it as local
processes in their own network namespaces, and reports their status like a kubelet."""
