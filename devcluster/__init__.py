"""The dev cluster: a real Kubernetes control plane on this machine and a node agent that
runs pods as local processes. Test and development infrastructure, not part of the
``propylon`` package."""
