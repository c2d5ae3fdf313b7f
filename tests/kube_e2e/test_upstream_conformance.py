"""The upstream Gateway API conformance suite (conformance/upstream, unmodified) in CI:
every test of every profile for the features Propylon's GatewayClass declares (core and
extended), against the chart on the dev cluster: the same run as the committed report.

This module runs last in the session on purpose: it installs the suite's Gateway API
release (v1.6.3 CRDs), newer than the v1.4.1 ones the other cluster tests apply.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from devcluster import conformance

# The whole declared run (README "Conformance": its duration) is set up by the first test.
pytestmark = pytest.mark.timeout(45 * 60)


@pytest.fixture(scope="module")
def report(devcluster: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("conformance") / "report.yaml"
    code = conformance.main(["--report", str(path)])
    assert path.exists(), f"the suite wrote no report (exit {code}); its output is above"
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    loaded["exit"] = code
    return loaded


@pytest.mark.parametrize("profile", conformance.PROFILES)
def test_every_test_of_the_profile_passes(report: dict[str, Any], profile: str) -> None:
    profiles = {p["name"]: p for p in report["profiles"]}
    assert profile in profiles, f"{profile} not in the report: {sorted(profiles)}"
    for level in ("core", "extended"):
        result = profiles[profile].get(level)
        if result is None:
            continue  # no extended feature of this profile declared
        failed = result.get("failedTests") or []
        assert result["statistics"]["Failed"] == 0, f"{level}: {failed}"


def test_the_report_names_the_implementation(report: dict[str, Any]) -> None:
    implementation = report["implementation"]
    assert implementation["project"] == "propylon"
    assert report["gatewayAPIVersion"] == conformance.GATEWAY_API
    assert report["exit"] == 0
