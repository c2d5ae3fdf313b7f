"""Model -> Envoy xDS resources. Pure: no I/O, no clock, no global state.

`translate(model, options)` returns `XdsResources`; a `Translator` does the same but
remembers serialized fragments so an unchanged VirtualHost, Listener, Cluster, endpoint
set or Secret is neither rebuilt nor reserialized.
Each of its results after the first says which names changed since the previous one
(`XdsResources.stamp`, `base`, `changes`); every other resource is the identical
`Encoded` object. With the model's `delta` hint (from the incremental Builder) the work
per change is in proportion to the change. Output dicts are in no particular order.

Resource names (stable, findable in Envoy's config_dump):

- Listener: the model Listener name `<ns>/<gateway>/<port>`.
- RouteConfiguration: for a plain HTTP listener, the listener name; for each HTTPS
  filter chain, `<listener>/https/<first server name>` (`*` when the chain has none).
  VirtualHost and Route names are the model's.
- ScopedRouteConfiguration (scoped RDS, at most one connection manager per Envoy: the
  biggest whose virtual hosts are all exact hostnames, from `SCOPED_MIN_HOSTS` of them):
  `<route configuration name>/<hostname>`, keyed on the request's host without its port,
  carrying an inline RouteConfiguration of the same name with that host's virtual host.
  That connection manager then has no RouteConfiguration; one change to one host sends
  one small scope, and Envoy applies only it (one big RouteConfiguration is re-applied
  whole on every change: ~40 ms at 3000 hosts, vs ~1.5 ms for a scope).
- Cluster and ClusterLoadAssignment: the model Cluster name `<ns>:<svc>:<port>` (EDS over
  ADS). `propylon:invalid-backend` is referenced, never defined: traffic shares of
  unresolved backendRefs go there and Envoy answers 500.
- Secret: the model Secret name `<ns>/<name>`; only secrets some listener uses are sent.
- Filter chains: `<listener>/http`, the HTTPS route config name,
  `<listener>/passthrough/<name>` (TLS passthrough), `<listener>/terminate/<name>` (a TLS
  listener with `mode: Terminate`: TLS ended with its certificates, then `tcp_proxy`),
  and `<listener>/tcp` (TCP listener: one `tcp_proxy`, weighted clusters for several
  backends).
- UDP listeners: `<ns>/<gateway>/<port>/udp`, no filter chain, the `udp_proxy` listener
  filter forwarding every session to one cluster (its matcher's no-match action); a
  UDPRoute's several backends are one cluster `<ns>:<udproute>:udproute` whose
  localities (one per backend) are weighted (`locality_weighted_lb_config`).

Shapes worth knowing: every HCM has the CORS filter (a no-op without a per-route policy,
so a route gaining CORS never changes the Listener) and the router; `use_remote_address`
with an explicit empty `internal_address_config`, so every client is "external" and
gets X-Forwarded-For appended and X-Envoy-External-Address set. A virtual host with gRPC
routes ends with a gRPC-only catch-all answering `200` + `grpc-status: 12`
(UNIMPLEMENTED), a valid trailers-only gRPC response.
"""

from propylon.envoy._static import static_bootstrap, to_dicts
from propylon.envoy.cluster import INVALID_BACKEND_CLUSTER
from propylon.envoy.listener import https_route_config_name
from propylon.envoy.output import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SCOPED_ROUTE_TYPE,
    SECRET_TYPE,
    Encoded,
    XdsResources,
    encode,
)
from propylon.envoy.translator import SCOPED_MIN_HOSTS, Translator, translate

__all__ = [
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "INVALID_BACKEND_CLUSTER",
    "LISTENER_TYPE",
    "ROUTE_TYPE",
    "SCOPED_MIN_HOSTS",
    "SCOPED_ROUTE_TYPE",
    "SECRET_TYPE",
    "Encoded",
    "Translator",
    "XdsResources",
    "encode",
    "https_route_config_name",
    "static_bootstrap",
    "to_dicts",
    "translate",
]
