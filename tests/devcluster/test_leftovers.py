"""What `cluster down` finds without the node agents: processes by the cluster's mark,
and the folders the nodes made on this machine (their ledger)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from waiting import wait_for

from devcluster import leftovers
from devcluster.node.hostdirs import HostDirs, remove_recorded


def test_a_marked_process_and_its_child_are_found_and_stopped(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    env = {**os.environ, **leftovers.mark(folder)}
    # A parent that ignores SIGTERM and a child in a session of its own (as a container
    # is): found by the mark each inherited, stopped by pid.
    parent = subprocess.Popen(
        ["bash", "-c", "trap '' TERM; setsid sleep 300 & wait"], env=env, start_new_session=True
    )
    try:
        wait_for("the child too", lambda: len(leftovers.marked_processes(folder)) == 2)
        found = leftovers.marked_processes(folder)
        assert parent.pid in found
        assert not leftovers.marked_processes(tmp_path / "another-cluster")
        assert sorted(leftovers.stop(found, grace=0.5)) == sorted(found)
        parent.wait(timeout=10)
        assert not leftovers.marked_processes(folder)
    finally:
        parent.kill()
        parent.wait()


def test_the_folders_a_node_made_are_removed_and_shared_ones_once_empty(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    dirs = HostDirs(ledger)
    shared = tmp_path / "run" / "propylon" / "envoy"
    dirs.make(shared, own=False)  # a hostPath DirectoryOrCreate, shared by the nodes
    mine = shared / "node-1"
    dirs.make(mine, own=True)  # its subPathExpr folder, this node's own
    (mine / "envoy.sock").write_text("")  # what the pod put there goes with it
    theirs = shared / "other-cluster-node-1"
    theirs.mkdir()  # another cluster's, made after ours
    dirs.make(tmp_path / "existing", own=True)
    dirs.make(tmp_path / "existing", own=True)  # made once, recorded once

    removed = remove_recorded(ledger)

    assert not mine.exists()
    assert theirs.is_dir(), "a folder this node did not make stays"
    assert shared.is_dir(), "a shared folder stays while it holds another's"
    assert not (tmp_path / "existing").exists()
    assert set(removed) == {mine, tmp_path / "existing"}
    theirs.rmdir()
    removed = remove_recorded(ledger)
    assert removed == [shared, shared.parent, shared.parent.parent]


def test_a_folder_two_nodes_share_goes_with_the_last_of_their_own(tmp_path: Path) -> None:
    shared = tmp_path / "envoy"
    first, second = HostDirs(tmp_path / "ledger-1"), HostDirs(tmp_path / "ledger-2")
    first.make(shared, own=False)  # the first node made it, the second found it
    first.make(shared / "node-1", own=True)
    second.make(shared, own=False)
    second.make(shared / "node-2", own=True)
    removed = remove_recorded(tmp_path / "ledger-1", tmp_path / "ledger-2")
    assert removed == [shared / "node-1", shared / "node-2", shared]


def test_mount_points_are_made_except_under_an_earlier_mount(tmp_path: Path) -> None:
    dirs = HostDirs(tmp_path / "ledger")
    first, under = tmp_path / "a", tmp_path / "a" / "b"
    dirs.mount_points([str(first), str(under), "relative"])
    assert first.is_dir() and not under.exists()
    assert remove_recorded(tmp_path / "ledger") == [first]
