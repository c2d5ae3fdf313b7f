"""The Prometheus metrics: names, labels and the endpoint, with a registry of their own."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from propylon import model as m
from propylon.envoy import CLUSTER_TYPE, LISTENER_TYPE, Translator, XdsResources
from propylon.metrics import AddressError, Metrics, parse_address, serve_metrics, xds_kind
from propylon.xds import AdsStream, Request, Response


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_xds_kind_is_the_message_name() -> None:
    assert xds_kind(CLUSTER_TYPE) == "Cluster"
    assert xds_kind(LISTENER_TYPE) == "Listener"


def test_reconcile_and_changes_by_kind() -> None:
    reg = CollectorRegistry()
    metrics = Metrics(reg)
    metrics.reconciled(0.003, ["HTTPRoute", "HTTPRoute", "Gateway"])
    assert sample(reg, "propylon_reconcile_duration_seconds_count") == 1
    assert sample(reg, "propylon_reconcile_duration_seconds_bucket", le="0.005") == 1
    assert sample(reg, "propylon_reconcile_duration_seconds_bucket", le="0.0025") == 0
    assert sample(reg, "propylon_object_changes_total", kind="HTTPRoute") == 2
    assert sample(reg, "propylon_object_changes_total", kind="Gateway") == 1


def test_kubernetes_shell_counters() -> None:
    reg = CollectorRegistry()
    metrics = Metrics(reg)
    metrics.status_written("Gateway")
    metrics.status_conflicted("Gateway")
    metrics.watch_restarted("HTTPRoute")
    metrics.watch_relisted("HTTPRoute")
    assert sample(reg, "propylon_status_writes_total", kind="Gateway") == 1
    assert sample(reg, "propylon_status_write_conflicts_total", kind="Gateway") == 1
    assert sample(reg, "propylon_watch_restarts_total", kind="HTTPRoute") == 1
    assert sample(reg, "propylon_watch_relists_total", kind="HTTPRoute") == 1


def test_leader_state_and_transitions() -> None:
    reg = CollectorRegistry()
    metrics = Metrics(reg)
    assert sample(reg, "propylon_leader") == 0
    metrics.set_leader(False)  # the first state recorded is no transition
    metrics.set_leader(True)
    metrics.set_leader(True)
    assert sample(reg, "propylon_leader") == 1
    metrics.set_leader(False)
    assert sample(reg, "propylon_leader") == 0
    assert sample(reg, "propylon_leader_transitions_total") == 2


def _cluster_snapshot(name: str) -> XdsResources:
    model = m.Model(clusters=(m.Cluster(name, (m.Endpoint("127.0.0.1", 80),)),))
    return Translator().translate(model, m.ProxyOptions())


@pytest.mark.parametrize("delta", [True, False], ids=["delta", "sotw"])
def test_stream_says_ack_or_nack(delta: bool) -> None:
    """What the xDS adapter counts: a request answering the response in flight is an
    ACK (no error) or a NACK (error); anything else is neither."""
    out: list[Response] = []
    stream = AdsStream(delta=delta, send=out.append)
    stream.set_snapshot(_cluster_snapshot("a"), 1)
    assert stream.on_request(Request(CLUSTER_TYPE, node_id="n")) is None
    first = out.pop()
    assert stream.on_request(Request(CLUSTER_TYPE, nonce=first.nonce, error="bad")) == "nack"
    assert stream.on_request(Request(CLUSTER_TYPE, nonce=first.nonce)) is None  # answered
    stream.set_snapshot(_cluster_snapshot("b"), 2)
    second = out.pop()
    assert stream.on_request(Request(CLUSTER_TYPE, nonce=second.nonce)) == "ack"


def test_xds_answers_by_kind() -> None:
    reg = CollectorRegistry()
    metrics = Metrics(reg)
    metrics.xds_pushed(CLUSTER_TYPE)
    metrics.xds_answered(CLUSTER_TYPE, accepted=True)
    metrics.xds_answered(LISTENER_TYPE, accepted=False)
    assert sample(reg, "propylon_xds_pushes_total", kind="Cluster") == 1
    assert sample(reg, "propylon_xds_acks_total", kind="Cluster") == 1
    assert sample(reg, "propylon_xds_nacks_total", kind="Listener") == 1
    assert sample(reg, "propylon_xds_acks_total", kind="Listener") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9962", ("127.0.0.1", 9962)),
        (":9962", ("0.0.0.0", 9962)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["9962", "127.0.0.1:", "127.0.0.1:http", "h:70000", "[x]:1"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(AddressError, match=r"HOST:PORT|IPv6"):
        parse_address(text)


def test_endpoint_serves_the_text_format() -> None:
    reg = CollectorRegistry()
    Metrics(reg).reconciled(0.01, ["Gateway"])
    server = serve_metrics("127.0.0.1:0", reg)
    try:
        with urllib.request.urlopen(f"http://{server.address}/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode()
    finally:
        server.close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["propylon_reconcile_duration_seconds"].type == "histogram"
    assert families["propylon_object_changes"].type == "counter"
    assert families["propylon_build_info"].type == "gauge"  # an Info, in text format 0.0.4
