"""The translator's output contract: `XdsResources`, each resource serialized once
(`Encoded`), and the type URLs that key them. Consumers (the xDS server, golden tests,
`propylon translate`) depend on this module only, not on how a translation is made."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from google.protobuf.message import Message

from propylon import model as m

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
SCOPED_ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration"


@dataclass(frozen=True, slots=True)
class Encoded:
    """A resource serialized once: the bytes put in an `Any`, and a content version.

    The message object is not kept (one per resource and cached fragment was most of
    the translator's memory); `message` decodes the bytes for the rare reader (golden
    files, `propylon translate`)."""

    kind: type[Message]
    data: bytes
    version: str

    @property
    def message(self) -> Message:
        msg = self.kind()
        msg.ParseFromString(self.data)
        return msg


def encode(message: Message) -> Encoded:
    return encoded(type(message), message.SerializeToString(deterministic=True))


def encoded(kind: type[Message], data: bytes) -> Encoded:
    """`data`, a deterministic serialization of a `kind` message, with its version."""
    return Encoded(kind, data, hashlib.blake2b(data, digest_size=8).hexdigest())


@dataclass(frozen=True)
class XdsResources:
    """Every resource Envoy needs, by name. `encoded` holds the same resources serialized
    (deterministically) with a content version, by type URL then name.

    No mapping here is in any particular order (sort at the point of output): a
    translation is the previous one's dicts patched, not thousands of names re-sorted."""

    listeners: Mapping[str, Message] = field(default_factory=dict)
    routes: Mapping[str, Message] = field(default_factory=dict)
    clusters: Mapping[str, Message] = field(default_factory=dict)
    endpoints: Mapping[str, Message] = field(default_factory=dict)
    secrets: Mapping[str, Message] = field(default_factory=dict)
    scoped_routes: Mapping[str, Message] = field(default_factory=dict)
    encoded: Mapping[str, Mapping[str, Encoded]] = field(
        default_factory=dict, compare=False, repr=False
    )
    #: Names this translation (compared by identity: unique while anyone holds it).
    stamp: m.Stamp | None = field(default=None, compare=False, repr=False)
    #: The stamp of the translation `changes` is relative to (the same Translator's
    #: previous one), or None.
    base: m.Stamp | None = field(default=None, compare=False, repr=False)
    #: Per type URL (all six type URLs present as keys when not None): the names whose
    #: encoded resource is not the identical `Encoded` object of translation `base`
    #: (added, changed or removed). None: unknown, compare all.
    changes: Mapping[str, frozenset[str]] | None = field(default=None, compare=False, repr=False)

    def by_type(self) -> Mapping[str, Mapping[str, Encoded]]:
        """Type URL -> name -> encoded resource (computed here if not given)."""
        if not self.encoded:
            encoded = {
                type_url: {name: encode(msg) for name, msg in sorted(msgs.items())}
                for type_url, msgs in self._typed()
            }
            object.__setattr__(self, "encoded", encoded)  # computed once, then shared
        return self.encoded

    def _typed(self) -> Iterable[tuple[str, Mapping[str, Message]]]:
        yield CLUSTER_TYPE, self.clusters
        yield ENDPOINT_TYPE, self.endpoints
        yield SECRET_TYPE, self.secrets
        yield LISTENER_TYPE, self.listeners
        yield SCOPED_ROUTE_TYPE, self.scoped_routes
        yield ROUTE_TYPE, self.routes


TYPE_URLS = (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    SECRET_TYPE,
    LISTENER_TYPE,
    SCOPED_ROUTE_TYPE,
    ROUTE_TYPE,
)


class Messages(Mapping[str, Message]):
    """The messages of a name -> Encoded dict, without building a second dict."""

    __slots__ = ("_encoded",)

    def __init__(self, encoded: Mapping[str, Encoded]) -> None:
        self._encoded = encoded

    def __getitem__(self, name: str) -> Message:
        return self._encoded[name].message

    def __iter__(self) -> Iterator[str]:
        return iter(self._encoded)

    def __len__(self) -> int:
        return len(self._encoded)

    def __repr__(self) -> str:
        return repr(dict(self.items()))
