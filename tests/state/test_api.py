from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from propylon.state import (
    ApiClient,
    ApiError,
    ApiServer,
    InstanceRunningError,
    NoInstanceError,
    to_document,
)
from propylon.state.api import ObjectQuery
from propylon.store import error
from propylon.store.testing import fake_object


def objects(_query: ObjectQuery) -> list[dict[str, Any]]:
    return [
        to_document(fake_object("Gateway", "b"), {"conditions": [{"type": "Programmed"}]}),
        to_document(fake_object("Gateway", "a", namespace="other")),
        to_document(fake_object("HTTPRoute", "r")),
    ]


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "api.sock"


async def test_round_trip(sock: Path) -> None:
    diag = error("boom", file="f.yaml", document=2, object="Gateway default/x", field="spec")
    server = ApiServer(
        sock, objects=objects, diagnostics=lambda: [diag], health=lambda: {"version": "test"}
    )
    async with server:
        assert sock.stat().st_mode & 0o777 == 0o600
        client = ApiClient(sock)
        health = await asyncio.to_thread(client.healthz)
        assert health["status"] == "ok" and health["version"] == "test"

        items = await asyncio.to_thread(client.list_objects, "Gateway")
        assert [i["metadata"]["name"] for i in items] == ["b", "a"]  # by namespace, name
        assert items[0]["status"] == {"conditions": [{"type": "Programmed"}]}
        assert items[0]["apiVersion"] == "gateway.networking.k8s.io/v1"

        items = await asyncio.to_thread(client.list_objects, "Gateway", namespace="other")
        assert [i["metadata"]["name"] for i in items] == ["a"]
        items = await asyncio.to_thread(client.list_objects, "Gateway", name="b")
        assert len(items) == 1
        listing = await asyncio.to_thread(client.objects)
        assert listing["kind"] == "List" and len(listing["items"]) == 3

        (d,) = await asyncio.to_thread(client.diagnostics)
        assert d["text"] == "f.yaml#2: Gateway default/x: spec: boom" and d["severity"] == "error"

        with pytest.raises(ApiError) as info:
            await asyncio.to_thread(client.request, "/v1/nope")
        assert info.value.status == 404
    assert not sock.exists()


async def test_provider_failure_is_a_500(sock: Path) -> None:
    def broken(_query: ObjectQuery) -> list[dict[str, Any]]:
        raise RuntimeError("oops")

    async with ApiServer(sock, objects=broken):
        with pytest.raises(ApiError, match="oops"):
            await asyncio.to_thread(ApiClient(sock).list_objects)


def test_no_instance_message(tmp_path: Path) -> None:
    with pytest.raises(NoInstanceError) as info:
        ApiClient(tmp_path / "api.sock").healthz()
    assert str(info.value) == (
        f"no running propylon found at {tmp_path / 'api.sock'}: "
        "start one with `propylon run -f DIR`"
    )


def test_stale_socket_file_means_no_instance(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens
    with pytest.raises(NoInstanceError):
        ApiClient(path).healthz()


async def test_stale_socket_is_replaced_live_one_refused(sock: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.close()
    async with ApiServer(sock, objects=lambda _query: []):
        with pytest.raises(InstanceRunningError):
            await ApiServer(sock, objects=lambda _query: []).start()
        assert (await asyncio.to_thread(ApiClient(sock).healthz))["status"] == "ok"


async def test_bad_requests(sock: Path) -> None:
    async with ApiServer(sock, objects=lambda _query: []):
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"POST /v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await reader.read()
        assert data.startswith(b"HTTP/1.1 405 ")
        writer.close()


async def test_socket_path_too_long(tmp_path: Path) -> None:
    long_dir = tmp_path / ("x" * 120)
    with pytest.raises(ValueError, match="shorter --state-dir"):
        await ApiServer(long_dir / "api.sock", objects=lambda _query: []).start()
