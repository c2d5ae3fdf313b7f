"""Test registry, the run loop and the upstream ConformanceReport (v1.4.1 format)."""

from __future__ import annotations

import datetime
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .harness import SHARED, Cluster, load_documents, suite_file

GATEWAY_API_VERSION = "v1.4.1"

# pkg/features (v1.4.1): the profiles this runner reports.
GATEWAY_EXTENDED = (
    "GatewayPort8080",
    "GatewayStaticAddresses",
    "GatewayHTTPListenerIsolation",
    "GatewayInfrastructurePropagation",
    "GatewayAddressEmpty",
)
HTTPROUTE_EXTENDED = (
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    "HTTPRouteParentRefPort",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteCORS",
)
BACKENDTLS = ("BackendTLSPolicy", "BackendTLSPolicySANValidation")
PROFILES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "GATEWAY-HTTP": (
        frozenset({"Gateway", "ReferenceGrant", "HTTPRoute"}),
        frozenset(GATEWAY_EXTENDED + HTTPROUTE_EXTENDED + BACKENDTLS),
    ),
    "GATEWAY-GRPC": (
        frozenset({"Gateway", "ReferenceGrant", "GRPCRoute"}),
        frozenset(GATEWAY_EXTENDED),
    ),
    "GATEWAY-TLS": (
        frozenset({"Gateway", "ReferenceGrant", "TLSRoute"}),
        frozenset(GATEWAY_EXTENDED),
    ),
}
# Why a test that belongs to a profile is not run here.
EXCEPTIONS: dict[str, str] = {
    "GatewayInfrastructure": (
        "needs a cluster: checks spec.infrastructure labels/annotations on the Pods and "
        "ServiceAccounts of the Gateway's deployment, which standalone mode does not create "
        "(the generated Service does carry them)"
    ),
}


@dataclass
class ConformanceTest:
    name: str
    features: frozenset[str]
    manifests: tuple[str, ...]
    run: Callable[[Cluster], None]
    provisional: bool = False
    fast: bool = False  # in the pytest subset

    def profiles(self) -> list[tuple[str, bool]]:
        """(profile, is_core) for the profiles this test counts towards."""
        out = []
        for name, (core, extended) in PROFILES.items():
            if self.features <= core:
                out.append((name, True))
            elif self.features <= core | extended and (
                self.features & core - {"Gateway"} or self.features - {"Gateway"} <= extended
            ):
                out.append((name, False))
        return out


TESTS: dict[str, ConformanceTest] = {}


def conformance(
    name: str,
    features: Iterable[str],
    manifests: Sequence[str] = (),
    *,
    provisional: bool = False,
    fast: bool = False,
) -> Callable[[Callable[[Cluster], None]], Callable[[Cluster], None]]:
    def register(fn: Callable[[Cluster], None]) -> Callable[[Cluster], None]:
        TESTS[name] = ConformanceTest(
            name, frozenset({"Gateway", *features}), tuple(manifests), fn, provisional, fast
        )
        return fn

    return register


@dataclass
class Result:
    name: str
    outcome: str  # passed | failed | skipped
    seconds: float
    message: str = ""


@dataclass
class Run:
    results: dict[str, Result] = field(default_factory=dict)
    seconds: float = 0.0


def run_one(cluster: Cluster, test: ConformanceTest) -> Result:
    if test.name in EXCEPTIONS:
        return Result(test.name, "skipped", 0.0, EXCEPTIONS[test.name])
    start = time.monotonic()
    applied: list[str] = []
    try:
        for manifest in test.manifests:
            docs = load_documents(suite_file(manifest))
            name = manifest.removesuffix(".yaml")
            cluster.apply(name, docs)
            applied.append(name)
        test.run(cluster)
        outcome, message = "passed", ""
    except AssertionError as exc:
        outcome, message = "failed", str(exc)
    except Exception as exc:
        outcome, message = "failed", "".join(traceback.format_exception(exc))[-2000:]
    finally:
        for name in reversed(applied):
            try:
                cluster.delete(name)
            except Exception as exc:
                message += f"\ncleanup of {name} failed: {exc}"
        for extra in list(cluster._applied):
            cluster.delete(extra)
    return Result(test.name, outcome, time.monotonic() - start, message)


def run_tests(
    tests: Sequence[ConformanceTest],
    *,
    log: Callable[[str], None] = print,
    cluster: Cluster | None = None,
) -> Run:
    start = time.monotonic()
    run = Run()
    own = cluster is None
    cluster = cluster or Cluster()
    try:
        if own:
            cluster.start()
        for test in tests:
            result = run_one(cluster, test)
            run.results[test.name] = result
            line = f"{result.outcome.upper():7} {test.name} ({result.seconds:.1f}s)"
            if result.outcome != "passed" and result.message:
                line += "\n        " + result.message.strip().replace("\n", "\n        ")[:1500]
            log(line)
    finally:
        if own:
            cluster.stop()
    run.seconds = time.monotonic() - start
    return run


def _stats(results: list[Result]) -> dict[str, int]:
    return {
        "Passed": sum(r.outcome == "passed" for r in results),
        "Failed": sum(r.outcome == "failed" for r in results),
        "Skipped": sum(r.outcome == "skipped" for r in results),
    }


def _result(stats: dict[str, int], results: list[Result]) -> str:
    if not results:
        return "skipped"
    if stats["Failed"]:
        return "failure"
    if stats["Passed"] == 0:
        return "skipped"
    return "partial" if stats["Skipped"] else "success"


NOT_PORTED = "not yet ported to the local runner"


def upstream_tests() -> dict[str, ConformanceTest]:
    """Every v1.4.1 test (from ../shared/gateway-api/TESTS.md), ported or not."""
    out = dict(TESTS)
    index = SHARED.parent / "TESTS.md"
    for line in index.read_text().splitlines() if index.exists() else []:
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 7 or not cells[1].isdigit() or cells[2] in out:
            continue
        feats = {f.strip() for f in cells[4].split(",") if f.strip()}
        out[cells[2]] = ConformanceTest(
            cells[2], frozenset({"Gateway", *feats}), (), lambda _c: None, cells[6] == "yes"
        )
    return out


def report(run: Run, *, version: str) -> dict[str, Any]:
    """The upstream ConformanceReport for the GATEWAY-HTTP/GRPC/TLS profiles.

    Tests not ported yet count as skipped (reason given), so a result is never "success"
    for tests that did not run; an extended feature is reported supported only when all
    of its tests ran and passed.
    """
    all_tests = upstream_tests()
    results = dict(run.results)
    for name, test in all_tests.items():
        if name not in results and name not in TESTS and not test.provisional:
            results[name] = Result(name, "skipped", 0.0, NOT_PORTED)
    profiles = []
    for profile, (_core, extended) in PROFILES.items():
        core_results: list[Result] = []
        ext_results: list[Result] = []
        feature_ok: dict[str, bool] = {}
        for test in all_tests.values():
            for name, is_core in test.profiles():
                if name != profile or is_core:
                    continue
                result = results.get(test.name)
                ok = result is not None and result.outcome == "passed"
                for feat in test.features & extended:
                    feature_ok[feat] = feature_ok.get(feat, True) and ok
        for test in all_tests.values():
            for name, is_core in test.profiles():
                if name != profile or (test.provisional and test.name not in run.results):
                    continue
                result = results.get(test.name)
                if result is None:
                    continue
                (core_results if is_core else ext_results).append(result)
        core_stats, ext_stats = _stats(core_results), _stats(ext_results)
        supported = sorted(f for f, ok in feature_ok.items() if ok)
        entry: dict[str, Any] = {
            "name": profile,
            "core": {
                "result": _result(core_stats, core_results),
                "statistics": core_stats,
            },
            "extended": {
                "result": _result(ext_stats, ext_results),
                "statistics": ext_stats,
                "supportedFeatures": supported,
                "unsupportedFeatures": sorted(extended - set(supported)),
            },
            "summary": "",
        }
        # as upstream: core and extended each list their own skipped and failed tests
        for part, part_results in (("core", core_results), ("extended", ext_results)):
            skipped = sorted(
                (r for r in part_results if r.outcome == "skipped"), key=lambda r: r.name
            )
            failed = sorted(r.name for r in part_results if r.outcome == "failed")
            if skipped:
                entry[part]["skippedTests"] = [f"{r.name}: {r.message}" for r in skipped]
            if failed:
                entry[part]["failedTests"] = failed
        entry["summary"] = (
            f"Core tests {'succeeded' if not core_stats['Failed'] else 'failed'} "
            f"({core_stats['Passed']} passed, {core_stats['Failed']} failed, "
            f"{core_stats['Skipped']} skipped); extended tests {ext_stats['Passed']} passed, "
            f"{ext_stats['Failed']} failed, {ext_stats['Skipped']} skipped."
        )
        profiles.append(entry)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "ConformanceReport",
        "implementation": {
            "organization": "propylon",
            "project": "propylon",
            "url": "https://github.com/propylon/propylon",
            "version": version,
            "contact": ["@propylon/maintainers"],
        },
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "gatewayAPIVersion": GATEWAY_API_VERSION,
        "gatewayAPIChannel": "experimental",
        "mode": "default",
        "profiles": profiles,
        "succeededProvisionalTests": sorted(
            name
            for name, r in run.results.items()
            if TESTS[name].provisional and r.outcome == "passed"
        ),
    }


def write_report(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=120))
