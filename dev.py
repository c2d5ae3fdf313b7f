#!/usr/bin/env python3
"""Bootstrap: the two quick-start commands, with nothing but Python 3.11 and pip.

    python3 dev.py up      install into .venv, then run the walkthrough (gateway + demo backends)
    python3 dev.py test    install into .venv with test tools, then lint, type-check and test
    python3 dev.py cluster up [--nodes N] | down | status
    python3 dev.py conformance [--run-test NAME]   the upstream Gateway API suite on the cluster
                           the dev cluster (devcluster/README.md): a real Kubernetes
                           control plane built from Go modules, nodes as network namespaces

Installs are skipped when pyproject.toml has not changed since the last one (a stamp file in
.venv records its hash), so repeated runs start at once.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("PROPYLON_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _ensure_venv(extras: str) -> None:
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / f".propylon-installed-{extras or 'base'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    print(f"installing {target} into {VENV}", flush=True)
    subprocess.run(
        [
            str(BIN / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            target,
        ],
        check=True,
    )
    stamp.write_text(digest)


def _exec(argv: list[str]) -> int:
    return subprocess.run(argv, cwd=ROOT).returncode


def up(args: list[str]) -> int:
    _ensure_venv("")
    # Become the walkthrough (no wrapper process): Ctrl-C and signals reach it directly,
    # and it shuts down in order without a traceback from here.
    argv = [str(BIN / "propylon"), "demo", "walkthrough", *args]
    os.chdir(ROOT)
    os.execv(argv[0], argv)


def test(args: list[str]) -> int:
    _ensure_venv("test")
    steps = [
        # The dev cluster's binaries (built from Go modules on a cold cache, minutes;
        # skipped when built): the Kubernetes-mode tests run against them.
        [str(BIN / "python"), "-m", "devcluster", "build"],
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
        [str(BIN / "mypy")],
        [str(BIN / "lint-imports")],
        [str(BIN / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
    ]
    for step in steps:
        print(
            "$",
            " ".join(Path(step[0]).name if i == 0 else s for i, s in enumerate(step)),
            flush=True,
        )
        code = _exec(step)
        if code != 0:
            return code
    return 0


def cluster(args: list[str]) -> int:
    _ensure_venv("test")
    return _exec([str(BIN / "python"), "-m", "devcluster", *args])


def conformance(args: list[str]) -> int:
    _ensure_venv("test")
    return _exec([str(BIN / "python"), "-m", "devcluster.conformance", *args])


def main() -> int:
    commands = {"up": up, "test": test, "cluster": cluster, "conformance": conformance}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    try:
        return commands[sys.argv[1]](sys.argv[2:])
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
