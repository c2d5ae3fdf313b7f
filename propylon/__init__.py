"""Propylon: Gateway API to Envoy, modelled on Cilium's Gateway API controller."""

import os as _os

# Propylon forks only to exec Envoy at once, so gRPC's fork handlers have nothing to
# protect; left on, they stall every gRPC thread around each fork (Envoy restarts took
# ~0.8 s instead of ~0.2 s) and log errors. gRPC reads this when it is first imported.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

__version__ = "0.1.0"
