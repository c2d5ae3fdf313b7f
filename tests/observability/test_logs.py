"""`--log-format json`: one JSON object per line, with the fields log collectors index."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from propylon.cli.observability import configure_logging


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines(restore_root_logger: None) -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    # A logger no other test configured: its level comes from the root's, set here.
    log = logging.getLogger("test_logs.json")
    log.debug("not shown at info")
    log.info("gateway %s programmed", "default/eg", extra={"gateway": "default/eg"})
    try:
        raise ValueError('bad "value"\nsecond line')
    except ValueError:
        log.exception("reconcile failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the traceback stays inside its record
    first, second = (json.loads(line) for line in lines)
    assert first["msg"] == "gateway default/eg programmed"
    assert (first["level"], first["logger"], first["gateway"]) == (
        "INFO",
        "test_logs.json",
        "default/eg",
    )
    assert datetime.fromisoformat(first["time"]).utcoffset() is not None  # with its zone
    assert second["level"] == "ERROR"
    assert 'ValueError: bad "value"\nsecond line' in second["exc_info"]


def test_text_is_the_default_format(restore_root_logger: None) -> None:
    out = io.StringIO()
    configure_logging("warning", "text", stream=out)
    logging.getLogger("test_logs.text").warning("plain %d", 1)
    assert out.getvalue().rstrip().endswith("WARNING test_logs.text: plain 1")
