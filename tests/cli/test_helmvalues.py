from __future__ import annotations

from pathlib import Path

import pytest

from propylon.cli.helmvalues import ValuesError, load_values, parse_set, typed_value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("FALSE", False),
        ("0", 0),
        ("42", 42),
        ("-3", -3),
        ("007", "007"),
        ("1.5", "1.5"),
        ("0x10", "0x10"),
        ("auto", "auto"),
        ("", ""),
    ],
)
def test_typed_value(text: str, value: object) -> None:
    assert typed_value(text) == value and type(typed_value(text)) is type(value)


def test_parse_set_nested_commas_lists_and_escapes() -> None:
    assert parse_set(["gatewayAPI.enabled=true,gatewayAPI.xffNumTrustedHops=2"]) == {
        "gatewayAPI": {"enabled": True, "xffNumTrustedHops": 2}
    }
    assert parse_set(["a.caps={NET_ADMIN,NET_BIND_SERVICE}"]) == {
        "a": {"caps": ["NET_ADMIN", "NET_BIND_SERVICE"]}
    }
    assert parse_set(["l[1].x=1", "l[0]=a"]) == {"l": ["a", {"x": 1}]}
    assert parse_set([r"labels.app\.kubernetes\.io/name=x\,y"]) == {
        "labels": {"app.kubernetes.io/name": "x,y"}
    }
    assert parse_set(["a=b=c"]) == {"a": "b=c"}
    assert parse_set(["a.b=1", "a.b=null"]) == {"a": {}}


def test_parse_set_errors() -> None:
    with pytest.raises(ValuesError, match="key=value"):
        parse_set(["novalue"])


def test_load_values_file_then_set(tmp_path: Path) -> None:
    f = tmp_path / "values.yaml"
    f.write_text(
        "gatewayAPI:\n  enabled: true\n  hostNetwork:\n    enabled: true\n"
        "envoy:\n  securityContext:\n    capabilities:\n      keepCapNetBindService: true\n"
        "      envoy: [NET_BIND_SERVICE]\nunrelated: 1\n"
    )
    values = load_values([f], ["gatewayAPI.xffNumTrustedHops=1", "envoy.enabled=false"])
    assert values.gateway_api.host_network.enabled
    assert values.gateway_api.xff_num_trusted_hops == 1
    assert values.envoy.enabled is False and not values.separate_envoy
    with pytest.raises(ValuesError, match="invalid values"):
        load_values([], ["gatewayAPI.xffNumTrustedHops=-1"])


def test_wrong_types_name_the_key_path() -> None:
    with pytest.raises(ValuesError) as err:
        load_values([], ["gatewayAPI.hostNetwork.enabled=maybe"])
    assert "gatewayAPI.hostNetwork.enabled: " in str(err.value)
    assert "'maybe'" in str(err.value)
    with pytest.raises(ValuesError, match=r"gatewayAPI\.enableProxyProtocol: "):
        load_values([], ["gatewayAPI.enableProxyProtocol=sometimes"])


def test_unknown_keys_in_gateway_api_are_warned(caplog: pytest.LogCaptureFixture) -> None:
    values = load_values(
        [],
        [
            "gatewayAPI.enableAlpm=true",  # a typo
            "gatewayAPI.hostNetwork.nodes.matchLabel.role=gw",  # another
            "gatewayAPI.hostNetwork.nodes.matchLabels.role=gw",
            "hubble.enabled=true",  # a Cilium key outside the checked sections: silent
        ],
    )
    assert values.gateway_api.host_network.nodes.match_labels == {"role": "gw"}
    warned = [r.getMessage() for r in caplog.records if r.name == "propylon.values"]
    assert warned == [
        "values: unknown key gatewayAPI.enableAlpm is ignored (a typo?)",
        "values: unknown key gatewayAPI.hostNetwork.nodes.matchLabel is ignored (a typo?)",
    ]
