"""`FileSource.update` (event-driven) gives what `load` (discover + stat everything) gives.

Random sequences of file operations (create, modify, delete, duplicates across files,
broken YAML, invalid objects, List documents, hidden files, new subdirectories, symlinks);
after each one, a source fed the event paths through `update` is compared with a twin
fed the same paths through `load`: same objects (origin and resource), same diagnostics
in the same order.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from propylon.sources.files import FileSource
from propylon.store import ChangeSet
from propylon.store.testing import fake_parse

NAMES = ["a", "b", "c", "d"]


def _doc(rng: random.Random) -> str:
    roll = rng.random()
    name = rng.choice(NAMES)
    if roll < 0.05:
        return "kind: [broken\n"
    if roll < 0.1:
        return (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
            f"metadata:\n  name: {name}\nspec:\n  invalid: nope\n"
        )
    if roll < 0.15:
        return (
            "apiVersion: v1\nkind: List\nitems:\n"
            f"- apiVersion: gateway.networking.k8s.io/v1\n  kind: Gateway\n"
            f"  metadata:\n    name: {name}\n  spec:\n    x: {rng.randint(0, 3)}\n"
            f"- apiVersion: gateway.networking.k8s.io/v1\n  kind: Gateway\n"
            f"  metadata:\n    name: {rng.choice(NAMES)}\n"
        )
    if roll < 0.2:
        return "apiVersion: v1\nkind: Unknown\nmetadata:\n  name: u\n"
    return (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
        f"metadata:\n  name: {name}\nspec:\n  x: {rng.randint(0, 3)}\n"
    )


def _text(rng: random.Random) -> str:
    return "---\n".join(_doc(rng) for _ in range(rng.randint(1, 3)))


def _view(cs: ChangeSet) -> tuple[object, ...]:
    objects = {k: (v.origin, v.resource.model_dump()) for k, v in cs.objects.items()}
    return objects, tuple(str(d) for d in cs.diagnostics)


@pytest.mark.parametrize("seed", range(12))
def test_update_matches_load(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "m"
    root.mkdir()
    for i in range(4):
        (root / f"f{i}.yaml").write_text(_text(rng))
    events = FileSource([root], parse=fake_parse)  # type: ignore[arg-type]
    twin = FileSource([root], parse=fake_parse)  # type: ignore[arg-type]
    assert _view(events.load()) == _view(twin.load())
    for _ in range(40):
        files = sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())
        op = rng.random()
        changed: list[Path] = []
        if op < 0.45 and files:
            target = rng.choice(files)
            if not target.is_symlink():
                target.write_text(_text(rng))
            changed = [target]
        elif op < 0.65:
            target = root / f"n{rng.randint(0, 9)}.{rng.choice(['yaml', 'yml', 'json', 'txt'])}"
            target.write_text(_text(rng) if target.suffix != ".json" else "{}")
            changed = [target]
        elif op < 0.8 and files:
            target = rng.choice(files)
            target.unlink()
            changed = [target]
        elif op < 0.85:
            target = root / f".hidden{rng.randint(0, 2)}.yaml"
            target.write_text(_text(rng))
            changed = [target]
        elif op < 0.92:
            sub = root / f"sub{rng.randint(0, 2)}"
            sub.mkdir(exist_ok=True)
            (sub / "x.yaml").write_text(_text(rng))
            changed = [sub]
        elif op < 0.96 and files:
            link = root / f"l{rng.randint(0, 2)}.yaml"
            if not link.exists() and not link.is_symlink():
                os.symlink(rng.choice(files), link)
                changed = [link]
        else:  # an atomic replace, reported as two paths
            tmp = root / ".tmp.yaml"
            tmp.write_text(_text(rng))
            target = root / f"f{rng.randint(0, 5)}.yaml"
            tmp.replace(target)
            changed = [tmp, target]
        got = events.update(changed)
        want = twin.load(changed)
        assert _view(got) == _view(want), (seed, changed)
    # The periodic rescan finds nothing new.
    assert _view(events.load()) == _view(twin.load())


def test_update_without_change_returns_the_same_set(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text(_text(random.Random(1)))
    source = FileSource([tmp_path], parse=fake_parse)  # type: ignore[arg-type]
    first = source.load()
    assert source.update([f]) is first
    assert source.update([tmp_path / "elsewhere.txt"]) is first


@pytest.mark.parametrize("seed", range(6))
def test_rescan_without_events_matches_load(tmp_path: Path, seed: int) -> None:
    """The periodic rescan (no event names the changed paths) finds what a full `load`
    finds: files written, created, deleted, in new subdirectories."""
    rng = random.Random(seed)
    root = tmp_path / "m"
    root.mkdir()
    for i in range(4):
        (root / f"f{i}.yaml").write_text(_text(rng))
    scanned = FileSource([root], parse=fake_parse)  # type: ignore[arg-type]
    twin = FileSource([root], parse=fake_parse)  # type: ignore[arg-type]
    assert _view(scanned.load()) == _view(twin.load())
    for _ in range(30):
        files = sorted(p for p in root.rglob("*.yaml") if p.is_file())
        op = rng.random()
        if op < 0.5 and files:
            rng.choice(files).write_text(_text(rng) + f"# {rng.random()}\n")
        elif op < 0.7:
            (root / f"n{rng.randint(0, 9)}.yaml").write_text(_text(rng))
        elif op < 0.85 and files:
            rng.choice(files).unlink()
        else:
            sub = root / f"sub{rng.randint(0, 2)}"
            sub.mkdir(exist_ok=True)
            (sub / f"x{rng.randint(0, 2)}.yaml").write_text(_text(rng))
        assert _view(scanned.rescan()) == _view(twin.load()), seed


def test_rescan_without_change_keeps_the_set_the_store_applied(tmp_path: Path) -> None:
    """Nothing changed: the same ChangeSet object, so the next change set's hint names
    the set the store applied last (else the store walks every object once)."""
    f = tmp_path / "a.yaml"
    f.write_text(_text(random.Random(2)))
    source = FileSource([tmp_path], parse=fake_parse)  # type: ignore[arg-type]
    first = source.load()
    assert source.rescan() is first
    (tmp_path / "b.yaml").write_text(_text(random.Random(3)))
    after = source.rescan()
    assert after.base is first.token
    assert _view(after) == _view(FileSource([tmp_path], parse=fake_parse).load())  # type: ignore[arg-type]
