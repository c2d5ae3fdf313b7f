"""Loaded by `propylon run` started from bench/propagation_trace.py (PYTHONPATH): wraps
the stages of one change with CLOCK_MONOTONIC timestamps (the same clock in every
process here), written to $PROPYLON_BENCH_TRACE. Does nothing in any other process."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

_PATH = os.environ.get("PROPYLON_BENCH_TRACE")
if _PATH and "propylon.cli" in " ".join(getattr(sys, "orig_argv", [])):
    from propylon.runtime import instance
    from propylon.sources import files
    from propylon.xds import _stream

    _out = open(_PATH, "a", buffering=1)  # noqa: SIM115 (open for the process's life)

    def _event(*parts: object) -> None:
        _out.write(f"{time.monotonic():.6f} {' '.join(map(str, parts))}\n")

    def _span(owner: Any, name: str, label: str) -> None:
        """Mark the start and end of `owner.name` (a plain method)."""
        original = getattr(owner, name)

        def spanned(*args: Any, **kwargs: Any) -> Any:
            _event(f"{label}-start")
            try:
                return original(*args, **kwargs)
            finally:
                _event(f"{label}-end")

        setattr(owner, name, spanned)

    import gc

    from propylon import gatewayapi
    from propylon.envoy import Translator
    from propylon.store import Store

    _span(Store, "apply", "store")
    _span(gatewayapi.Builder, "build", "build")
    _span(Translator, "translate", "translate")
    from propylon.state.statedir import StateDir

    _span(StateDir, "save_statuses", "save")
    _span(StateDir, "save_metadata", "save-records")
    _span(files.FileSource, "load", "rescan")
    gc.callbacks.append(lambda phase, info: _event(f"gc-{phase}", info.get("generation")))

    _update = files.FileSource.update

    def update(self: Any, changed: Any) -> Any:
        changed = list(changed)
        _event("read-start", len(changed))
        try:
            return _update(self, changed)
        finally:
            _event("read-end")

    _reconcile = instance.Instance.reconcile

    async def reconcile(self: Any, changeset: Any) -> None:
        _event("reconcile-start")
        try:
            await _reconcile(self, changeset)
        finally:
            _event("reconcile-end")

    _respond = _stream.AdsStream._respond

    def respond(self: Any, type_url: str) -> None:
        _event("send", _stream.SHORT[type_url])
        _respond(self, type_url)

    _on_request = _stream.AdsStream.on_request

    def on_request(self: Any, req: Any) -> None:
        ack = "ack" if req.nonce else "request"
        _event(f"{ack}-start", _stream.SHORT.get(req.type_url, "?"))
        try:
            _on_request(self, req)
        finally:
            _event(f"{ack}-end", _stream.SHORT.get(req.type_url, "?"))

    from propylon.xds import _server

    _delta_response = _server._delta_response

    def delta_response(r: Any) -> Any:
        _event("write", _stream.SHORT[r.type_url])  # the writer took it off the queue
        return _delta_response(r)

    _server._delta_response = delta_response  # type: ignore[assignment]
    files.FileSource.update = update  # type: ignore[method-assign]
    instance.Instance.reconcile = reconcile  # type: ignore[method-assign]
    _stream.AdsStream._respond = respond  # type: ignore[method-assign]
    _stream.AdsStream.on_request = on_request  # type: ignore[method-assign]
