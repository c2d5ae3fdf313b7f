"""The image table: which image references the node can run, and with which argv."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from devcluster import build, images


@pytest.fixture
def echo_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    binary = tmp_path / "echo-basic"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PDC_ECHO_BASIC", str(binary))
    return binary


@pytest.mark.parametrize(
    "reference",
    [
        "gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0-394-g40c666fd",
        "registry.k8s.io/gateway-api/echo-basic:v1.6.3",
        "echo-basic",
    ],
)
def test_echo_basic_image_runs_the_built_binary(echo_binary: Path, reference: str) -> None:
    image = images.resolve(reference)
    assert image.argv(None, None) == [str(echo_binary)]


def test_propylon_image_resolves_command_by_basename_among_its_executables() -> None:
    image = images.resolve("ghcr.io/example/propylon:0.1.0")
    bindir = Path(sys.prefix) / "bin"
    assert image.argv(None, None) == [str(bindir / "propylon")]
    assert image.argv(["/usr/local/bin/envoy"], ["-c", "x.yaml"]) == [
        str(bindir / "envoy"),
        "-c",
        "x.yaml",
    ]
    # args without command replace the image's default args, after its entrypoint
    assert image.argv(None, ["kubernetes"]) == [str(bindir / "propylon"), "kubernetes"]


def test_command_that_the_image_does_not_contain_is_named() -> None:
    image = images.resolve("propylon:dev")
    with pytest.raises(images.ExecutableNotFound, match=r'"/bin/bash".*propylon:dev'):
        image.argv(["/bin/bash"], None)


def test_unknown_image_is_an_error_naming_it() -> None:
    with pytest.raises(
        images.ImageError, match=re.escape('"docker.io/library/nginx:1.27" is not known')
    ):
        images.resolve("docker.io/library/nginx:1.27")


def test_echo_basic_binary_missing_is_an_image_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PDC_ECHO_BASIC", str(tmp_path / "absent"))
    with pytest.raises(images.ImageError, match="does not exist"):
        images.resolve("echo-basic:v1")


def test_busybox_image_has_a_shell_and_curl_from_this_machine() -> None:
    image = images.resolve("docker.io/library/busybox:1.36")
    argv = image.argv(["sh", "-c", "curl --version"], None)
    assert Path(argv[0]).name == "sh" and Path(argv[0]).is_absolute()
    assert image.executable("/usr/bin/curl").name == "curl"


def test_coredns_image_runs_the_built_coredns_with_the_pods_args(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROPYLON_DEVCLUSTER_CACHE", str(tmp_path))
    reference = "registry.k8s.io/coredns/coredns:v1.12.2"
    with pytest.raises(images.ImageError, match=r"CoreDNS binary .* does not exist"):
        images.resolve(reference)
    binary = build.binaries().coredns
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    image = images.resolve(reference)
    assert image.argv(None, ["-conf", "/root/Corefile"]) == [
        str(binary),
        "-conf",
        "/root/Corefile",
    ]
