"""ClusterLoadAssignment resources: the ready endpoints of one model Cluster."""

from __future__ import annotations

from google.protobuf.message import Message

from propylon import model as m
from propylon.envoy import _pb as pb


def build_load_assignment(c: m.Cluster) -> Message:
    return pb.load_assignment(c.name, ((e.address, e.port) for e in c.endpoints if e.ready))
