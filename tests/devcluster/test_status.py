"""Pod phase and conditions from the containers' states, as the kubelet reports them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devcluster.node.process import BindMount, launch_argv
from devcluster.node.status import Conditions, ContainerStatus, phase, pod_conditions


def running(name: str) -> ContainerStatus:
    return ContainerStatus(name, "img", state={"running": {"startedAt": "t"}}, started=True)


def finished(name: str, code: int) -> ContainerStatus:
    state = {"terminated": {"exitCode": code}}
    return ContainerStatus(name, "img", state=state, final=True)


def test_phase() -> None:
    assert phase([], [ContainerStatus("a", "img")]) == "Pending"
    assert phase([], [running("a"), ContainerStatus("b", "img")]) == "Running"
    assert phase([], [finished("a", 0), running("b")]) == "Running"
    assert phase([], [finished("a", 0), finished("b", 0)]) == "Succeeded"
    assert phase([], [finished("a", 0), finished("b", 2)]) == "Failed"
    crash_looping = ContainerStatus("a", "img", restart_count=3)
    assert phase([], [crash_looping]) == "Running"


def test_phase_with_init_containers() -> None:
    main = ContainerStatus("main", "img")
    assert phase([running("init")], [main]) == "Pending"
    assert phase([finished("init", 1)], [main]) == "Failed"
    assert phase([finished("init", 0)], [running("main")]) == "Running"


def test_ready_condition_keeps_its_transition_time_until_it_changes() -> None:
    conditions = Conditions()
    container = running("a")
    first = {c["type"]: c for c in pod_conditions(conditions, True, True, [container], "t1")}
    assert first["Ready"]["status"] == "False"
    container.ready = True
    second = {c["type"]: c for c in pod_conditions(conditions, True, True, [container], "t2")}
    third = {c["type"]: c for c in pod_conditions(conditions, True, True, [container], "t3")}
    assert (
        second["Ready"]
        == third["Ready"]
        == {
            "type": "Ready",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": "t2",
        }
    )
    assert third["PodScheduled"]["lastTransitionTime"] == "t1"


def test_launch_argv_enters_the_netns_then_a_private_mount_namespace() -> None:
    argv = launch_argv(
        ["/bin/echo-basic", "-x"],
        "pdc-pod-node-1-abcdef12",
        [BindMount(Path("/state/v/token"), "/var/run/secrets", True)],
        "/work dir",
    )
    assert argv[:2] == ["nsenter", "--net=/run/netns/pdc-pod-node-1-abcdef12"]
    assert argv[2:7] == ["unshare", "--mount", "--propagation", "private", "--"]
    script = argv[9]
    # Sources are opened first and bound from the descriptor: a later mount over the
    # state dir's folder cannot hide them.
    assert script.index("exec 10</state/v/token") < script.index("mount ")
    assert "mount --no-canonicalize -o bind,ro /proc/self/fd/10 /var/run/secrets" in script
    assert "exec 10<&-" in script
    assert "cd '/work dir'" in script
    assert argv[-2:] == ["/bin/echo-basic", "-x"]
    host_network = launch_argv(["/bin/true"], None, [], None)
    assert host_network[0] == "unshare"


@pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")
def test_a_volume_mounted_over_the_executables_folder_does_not_hide_it(tmp_path: Path) -> None:
    # CoreDNS's Corefile volume is mounted at /root, where this host keeps the binaries.
    bindir = tmp_path / "root" / "bin"
    bindir.mkdir(parents=True)
    tool = bindir / "printer"
    shutil.copy("/bin/cat", tool)
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "Corefile").write_text(".:53 { whoami }\n")
    argv = launch_argv(
        [str(tool), str(tmp_path / "root" / "Corefile")],
        None,
        [BindMount(volume, str(tmp_path / "root"), True)],
        None,
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, ".:53 { whoami }\n"), done.stderr
