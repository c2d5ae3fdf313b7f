"""ClusterLoadAssignment resources: the ready endpoints of one model Cluster."""

from __future__ import annotations

from google.protobuf.message import Message

from propylon import model as m
from propylon.envoy import _pb as pb
from propylon.envoy import _pb_stream as pbs
from propylon.envoy.access import admitted_endpoints, refused_load_assignment


def build_load_assignment(c: m.Cluster, access: m.BackendAccess | None = None) -> Message:
    """`access`: network policy leaves out the endpoints it does not admit."""
    refused = refused_load_assignment(c, access)
    if refused is not None:
        return refused
    if c.weighted:
        out = set() if access is None else access.excluded
        return pbs.weighted_load_assignment(
            c.name,
            (
                (
                    w,
                    (
                        (e.address, e.port)
                        for e in eps
                        if e.ready and (e.address, e.port) not in out
                    ),
                )
                for w, eps in c.weighted
            ),
        )
    return pb.load_assignment(c.name, admitted_endpoints(c, access))
