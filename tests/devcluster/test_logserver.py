"""The node agent's container-log answers (devcluster.node.logserver), without a cluster."""

from __future__ import annotations

from pathlib import Path

from devcluster.node.logserver import LogQuery, LogServer, parse_query


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def server(tmp_path: Path, clock: Clock) -> tuple[LogServer, Path]:
    folder = tmp_path / "pods" / "uid-1"
    (folder / "logs").mkdir(parents=True)
    found = {("ns", "web"): folder}
    return LogServer(tmp_path / "pods", lambda ns, name: found.get((ns, name)), clock), folder


def test_since_starts_where_the_file_ended_at_the_last_sample_before(tmp_path: Path) -> None:
    clock = Clock()
    logs, folder = server(tmp_path, clock)
    log = folder / "logs" / "c.log"
    log.write_bytes(b"early\n")
    logs.sample()  # t=1000
    clock.now = 1001
    with log.open("ab") as file:
        file.write(b"late\n")
    logs.sample()  # t=1001

    assert logs.read("ns", "web", "c", LogQuery()) == b"early\nlate\n"
    assert logs.read("ns", "web", "c", LogQuery(since=1000.5)) == b"late\n"
    assert logs.read("ns", "web", "c", LogQuery(since=1002)) == b""
    # Before the first sample: everything (a superset, never a line missed).
    assert logs.read("ns", "web", "c", LogQuery(since=10)) == b"early\nlate\n"


def test_tail_and_limit_and_unknown_pods(tmp_path: Path) -> None:
    logs, folder = server(tmp_path, Clock())
    (folder / "logs" / "c.log").write_bytes(b"a\nb\nc\n")
    assert logs.read("ns", "web", "c", LogQuery(tail_lines=2)) == b"b\nc\n"
    assert logs.read("ns", "web", "c", LogQuery(tail_lines=0)) == b""
    assert logs.read("ns", "web", "c", LogQuery(limit_bytes=3)) == b"a\nb"
    assert logs.read("ns", "web", "not-started", LogQuery()) == b""
    assert logs.read("ns", "elsewhere", "c", LogQuery()) is None


def test_query_options_as_kubectl_sends_them() -> None:
    query = parse_query("sinceTime=2026-12-07T00%3A00%3A01Z&tailLines=5&limitBytes=9", 0.0)
    assert query.since == 1796601601.0
    assert (query.tail_lines, query.limit_bytes) == (5, 9)
    assert parse_query("sinceSeconds=60", 500.0).since == 440.0
