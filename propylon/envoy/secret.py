"""Secret resources (SDS): a TLS certificate and key a listener serves."""

from __future__ import annotations

from google.protobuf.message import Message

from propylon import model as m
from propylon.envoy import _pb as pb


def build_secret(s: m.Secret) -> Message:
    return pb.tls_secret(s.name, s.certificate_chain, s.private_key)
