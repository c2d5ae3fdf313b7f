"""Client of the local API (used by `propylon get` / `describe`): http.client over the
unix socket of a state directory."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlencode


class NoInstanceError(RuntimeError):
    """No propylon is running for this state directory."""


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ApiClient:
    def __init__(self, socket_path: Path | str, *, timeout: float = 10.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout

    def _no_instance(self) -> NoInstanceError:
        return NoInstanceError(
            f"no running propylon found at {self.socket_path}: start one with `propylon run -f DIR`"
        )

    def request(self, path: str, query: dict[str, str] | None = None) -> Any:
        target = path + (f"?{urlencode(query)}" if query else "")
        conn = _UnixConnection(str(self.socket_path), self.timeout)
        try:
            try:
                conn.request("GET", target, headers={"Accept": "application/json"})
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise self._no_instance() from exc
            except OSError as exc:
                if not self.socket_path.exists():
                    raise self._no_instance() from exc
                raise
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        try:
            data = json.loads(body) if body else None
        except ValueError as exc:
            raise ApiError(response.status, f"invalid response from {self.socket_path}") from exc
        if response.status != 200:
            message = data.get("error") if isinstance(data, dict) else None
            raise ApiError(response.status, str(message or response.reason))
        return data

    def healthz(self) -> dict[str, Any]:
        data: dict[str, Any] = self.request("/v1/healthz")
        return data

    def objects(
        self, kind: str | None = None, *, namespace: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """The Kubernetes-style List (`{"apiVersion": "v1", "kind": "List", "items": [...]}`)
        of objects (spec + metadata + status), filtered by kind, namespace and name."""
        query = {k: v for k, v in (("kind", kind), ("namespace", namespace), ("name", name)) if v}
        data = self.request("/v1/objects", query)
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise ApiError(200, f"invalid response from {self.socket_path}")
        return data

    def list_objects(
        self, kind: str | None = None, *, namespace: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]:
        """`objects(...)["items"]`."""
        items: list[dict[str, Any]] = self.objects(kind, namespace=namespace, name=name)["items"]
        return items

    def diagnostics(self) -> list[dict[str, Any]]:
        data = self.request("/v1/diagnostics")
        items: list[dict[str, Any]] = data.get("items", []) if isinstance(data, dict) else []
        return items
