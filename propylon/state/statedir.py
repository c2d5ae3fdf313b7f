"""The state directory: what survives a restart and what `get`/`describe` talk to.

    <state-dir>/metadata.json   the store's records (generation, spec hash, creation, uid)
    <state-dir>/status.json     the last statuses, with lastTransitionTime
    <state-dir>/propylon.pid    the pid of the running instance
    <state-dir>/api.sock        the local API (see `propylon.state.api`)

Default: `$PROPYLON_STATE_DIR`, else `~/.local/state/propylon` (for `run` and `get`
alike); `--state-dir` overrides. JSON files are written atomically (temp file + fsync +
rename), so a crash leaves the old or the new file, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
import os
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any
from zlib import crc32

from propylon.resources.meta import ObjectKey
from propylon.store import key_from_str, key_to_str

STATE_DIR_ENV = "PROPYLON_STATE_DIR"
FORMAT_VERSION = 1


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    configured = env.get(STATE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path("~/.local/state/propylon").expanduser()


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def write_text_atomic(path: Path, text: str | Iterable[str]) -> None:
    """Temp file + fsync + rename: a crash leaves the old file or the new one. `text`
    may come in pieces (written as they come: no joined copy of a big file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if isinstance(text, str):
                handle.write(text)
            else:
                handle.writelines(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# A group of members starts at a name whose CRC-32 has these bits clear: ~64 members per
# group, and the boundaries depend on the names alone, so adding or removing one member
# changes one group, wherever it sorts. (Not `hash()`: it is salted per process, so the
# groups, and the work of a save, would differ from run to run.)
_GROUP_MASK = 63
# A save of tens of thousands of members runs on a thread of its own while reconciles go
# on: it lets them have the interpreter this often (members, well under 1 ms).
_PAUSE_EVERY = 500


@dataclass(frozen=True, slots=True)
class _Group:
    names: bytes  # a digest of the members' names
    values: tuple[Any, ...]
    packed: bytes  # the group's text (ASCII: `json.dumps` escapes the rest), deflated


class _Fragments:
    """A JSON object written one member per line, in groups of members whose text is
    kept while the group's names and values (the very same objects) are: saving
    thousands of records re-encodes only the groups that changed (json.dump
    with indent is pure Python: ~300 ms at 5000 routes, on every save). A text per
    group, not per member: no name string, text object and tuple kept per record
    (~3 MiB at 5000 routes); and deflated, since the texts are only read back to be
    written again (3.4 -> ~0.4 MiB at 5000 routes; zlib runs without the GIL, on the
    save's thread)."""

    def __init__(self) -> None:
        self._groups: dict[str, _Group] = {}  # first name -> its group

    def render(self, members: Iterable[tuple[str, Any]]) -> str:
        return "".join(self.pieces(members))

    def pieces(self, members: Iterable[tuple[str, Any]]) -> Iterator[str]:
        """The object's text in pieces, a group's at a time (each inflated as it is
        written); the kept texts are replaced once the last piece is taken."""
        fresh: dict[str, _Group] = {}
        # One encoding per value object: routes that share one status (see
        # `gatewayapi/statusparts.py`) share its text too. The values outlive the call.
        encoded: dict[int, str] = {}
        names: list[str] = []
        values: list[Any] = []
        opening = "{\n"
        for i, (name, value) in enumerate(members):
            if i % _PAUSE_EVERY == _PAUSE_EVERY - 1:
                time.sleep(0)  # the GIL to a waiting thread now, not in up to 5 ms
            if names and not crc32(name.encode()) & _GROUP_MASK:
                yield opening
                yield self._group(names, values, fresh, encoded)
                opening = ",\n"
                names, values = [], []
            names.append(name)
            values.append(value)
        if names:
            yield opening
            yield self._group(names, values, fresh, encoded)
            opening = ",\n"
        yield "{}" if opening == "{\n" else "\n}"
        self._groups = fresh

    def _group(
        self, names: list[str], values: list[Any], fresh: dict[str, _Group], encoded: dict[int, str]
    ) -> str:
        digest = hashlib.blake2b("\0".join(names).encode(), digest_size=16).digest()
        hit = self._groups.get(names[0])
        if (
            hit is None
            or hit.names != digest
            or len(hit.values) != len(values)
            or not all(map(operator.is_, hit.values, values))
        ):
            parts = []
            for name, value in zip(names, values, strict=True):
                text = encoded.get(id(value))
                if text is None:
                    plain = value if isinstance(value, dict) else dict(value)
                    text = encoded[id(value)] = json.dumps(plain, sort_keys=True)
                parts.append(f"{json.dumps(name)}: {text}")
            joined = ",\n".join(parts)
            fresh[names[0]] = _Group(digest, tuple(values), zlib.compress(joined.encode(), 1))
            return joined
        fresh[names[0]] = hit
        return zlib.decompress(hit.packed).decode()


class _SharedFragments:
    """`_Fragments` for values that many members share (route statuses): a text per
    value object kept per member, so equal statuses keep one text (grouped texts would
    hold a copy per route: 2.2 MiB instead of 1.1 at 5000 routes)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Any, str]] = {}

    def render(self, members: Iterable[tuple[str, Any]]) -> str:
        return "".join(self.pieces(members))

    def pieces(self, members: Iterable[tuple[str, Any]]) -> Iterator[str]:
        """The object's text in pieces, a member's at a time (see `_Fragments.pieces`)."""
        cache = self._cache
        fresh: dict[str, tuple[Any, str]] = {}
        # One encoding per value object: routes that share one status (see
        # `gatewayapi/statusparts.py`) share its text too. The values outlive the call.
        encoded: dict[int, str] = {}
        opening = "{\n"
        for i, (name, value) in enumerate(members):
            if i % _PAUSE_EVERY == _PAUSE_EVERY - 1:
                time.sleep(0)  # the GIL to a waiting thread now (see `_PAUSE_EVERY`)
            hit = cache.get(name)
            if hit is None or hit[0] is not value:
                text = encoded.get(id(value))
                if text is None:
                    plain = value if isinstance(value, dict) else dict(value)
                    text = encoded[id(value)] = json.dumps(plain, sort_keys=True)
                hit = (value, text)
            fresh[name] = hit
            yield f"{opening}{json.dumps(name)}: {hit[1]}"
            opening = ",\n"
        yield "{}" if opening == "{\n" else "\n}"
        self._cache = fresh


def read_json(path: Path) -> Any:
    """The file's JSON, or None when it is missing or unreadable (a corrupt state file
    must not stop Propylon from starting: it starts afresh)."""
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


class StateDir:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser()
        self._status_text = _SharedFragments()
        self._record_text = _Fragments()

    def __repr__(self) -> str:
        return f"StateDir({str(self.path)!r})"

    @property
    def metadata_file(self) -> Path:
        return self.path / "metadata.json"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def pid_file(self) -> Path:
        return self.path / "propylon.pid"

    @property
    def socket_path(self) -> Path:
        return self.path / "api.sock"

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- store records ---------------------------------------------------------------

    def load_metadata(self) -> dict[str, dict[str, Any]]:
        """Records for `Store(records=...)`; {} when there are none."""
        data = read_json(self.metadata_file)
        objects = data.get("objects") if isinstance(data, dict) else None
        if not isinstance(objects, dict):
            return {}
        return {str(k): dict(v) for k, v in objects.items() if isinstance(v, dict)}

    def save_metadata(self, records: Mapping[str, Mapping[str, Any]]) -> None:
        members = self._record_text.pieces((k, records[k]) for k in sorted(records))
        write_text_atomic(
            self.metadata_file,
            chain(('{"objects": ',), members, (f',\n"version": {FORMAT_VERSION}}}\n',)),
        )

    # -- statuses -------------------------------------------------------------------

    def load_statuses(self) -> dict[ObjectKey, dict[str, Any]]:
        data = read_json(self.status_file)
        statuses = data.get("statuses") if isinstance(data, dict) else None
        if not isinstance(statuses, dict):
            return {}
        out: dict[ObjectKey, dict[str, Any]] = {}
        for text, status in statuses.items():
            if not isinstance(status, dict):
                continue
            try:
                out[key_from_str(str(text))] = status
            except ValueError:
                continue
        return out

    def save_statuses(self, statuses: Mapping[ObjectKey, Mapping[str, Any]]) -> None:
        members = self._status_text.pieces((key_to_str(k), statuses[k]) for k in sorted(statuses))
        write_text_atomic(
            self.status_file,
            chain(('{"statuses": ',), members, (f',\n"version": {FORMAT_VERSION}}}\n',)),
        )

    # -- pid ------------------------------------------------------------------------

    def write_pid(self, pid: int | None = None) -> None:
        self.ensure()
        tmp = self.pid_file.with_name(f".{self.pid_file.name}.tmp")
        tmp.write_text(f"{os.getpid() if pid is None else pid}\n")
        os.replace(tmp, self.pid_file)

    def read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def running_pid(self) -> int | None:
        """The pid in the pid file if that process is alive, else None."""
        pid = self.read_pid()
        if pid is None or pid <= 0:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def remove_pid(self) -> None:
        if self.read_pid() == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.pid_file.unlink()
