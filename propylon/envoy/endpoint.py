"""ClusterLoadAssignment resources: the ready endpoints of one model Cluster."""

from __future__ import annotations

from google.protobuf.message import Message

from propylon import model as m
from propylon.envoy import _pb as pb
from propylon.envoy import _pb_stream as pbs


def build_load_assignment(c: m.Cluster) -> Message:
    if c.weighted:
        return pbs.weighted_load_assignment(
            c.name,
            ((w, ((e.address, e.port) for e in eps if e.ready)) for w, eps in c.weighted),
        )
    return pb.load_assignment(c.name, ((e.address, e.port) for e in c.endpoints if e.ready))
