"""Envoy's own rules, checked before anything reaches it.

An object the API server accepts can still be one Envoy rejects (NACK), and a rejected
update blocks every later one on the same resource. What Envoy would reject is found
here first and becomes a Gateway API condition on the object it came from:

- regular expressions: RE2 (google-re2, the engine Envoy uses), within Envoy's default
  program size limit (runtime `re2.max_program_size.error_level`, 100);
- header modifiers: Envoy refuses to set, add or remove `Host` (and pseudo-headers);
- header values and paths: no CR, LF or NUL (Envoy's HTTP_HEADER_VALUE rule);
- TLS certificates: the private key must be the certificate's (else every handshake fails).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import re2

from propylon.gatewayapi.rules import grpc_method_regex
from propylon.resources import GRPCRoute, HTTPRoute, TLSRoute
from propylon.resources.common import is_ip_address
from propylon.resources.routes import (
    GRPCRouteFilter,
    HTTPHeaderFilter,
    HTTPPathModifier,
    HTTPRouteFilter,
)

#: Envoy's default `re2.max_program_size.error_level`: a bigger program is rejected.
RE2_MAX_PROGRAM_SIZE = 100
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the reason is reported in the status, not on stderr
_CONTROL = ("\r", "\n", "\0")


def regex_problem(pattern: str) -> str | None:
    """Why Envoy would reject `pattern` as a google_re2 regex, or None."""
    try:
        program = re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        return f"invalid RE2 regular expression {pattern!r}: {detail}"
    if program.programsize > RE2_MAX_PROGRAM_SIZE:
        return (
            f"regular expression {pattern!r} is too complex for Envoy: RE2 program size "
            f"{program.programsize} > {RE2_MAX_PROGRAM_SIZE}"
        )
    return None


def control_problem(value: str) -> str | None:
    """Why `value` cannot be a header value or path (CR, LF, NUL), or None."""
    for ch, name in zip(_CONTROL, ("CR", "LF", "NUL"), strict=True):
        if ch in value:
            return f"{value!r} contains {name}, which Envoy does not allow in a header or path"
    return None


def host_header_problem(name: str) -> str | None:
    if name.lower() == "host" or name.startswith(":"):
        return f"header {name!r} cannot be modified (Envoy refuses Host and pseudo-headers)"
    return None


def certificate_problem(chain_pem: bytes, key_pem: bytes) -> str | None:
    """Why Envoy could not serve `chain_pem` with `key_pem`, or None."""
    # Imported when a certificate is first checked: the library (with its own OpenSSL)
    # is ~8 MiB of RSS that a gateway without TLS listeners never needs.
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_private_key,
    )

    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        return f"tls.crt is not a valid PEM certificate ({exc})"
    try:
        key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        return f"tls.key is not a valid unencrypted PEM private key ({exc})"
    except Exception as exc:  # unsupported key types raise library-specific errors
        return f"tls.key cannot be used ({type(exc).__name__}: {exc})"
    fmt = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if certs[0].public_key().public_bytes(*fmt) != key.public_key().public_bytes(*fmt):
        return "tls.key does not match the certificate in tls.crt"
    return None


# --- routes ------------------------------------------------------------------------------


def route_problems(route: HTTPRoute | GRPCRoute | TLSRoute) -> list[str]:
    """`field: why` for everything in `route` that Envoy would reject or that the
    Gateway API forbids beyond the CRD schema (hostnames that are IP addresses)."""
    out = [
        f"spec.hostnames[{i}]: {h!r} is an IP address; route hostnames must be DNS names"
        for i, h in enumerate(route.spec.hostnames)
        if h[:1].isdigit() and is_ip_address(h)  # a hostname pattern: no ':', no IPv6
    ]
    if isinstance(route, HTTPRoute):
        out.extend(_http_problems(route))
    elif isinstance(route, GRPCRoute):
        out.extend(_grpc_problems(route))
    return out


def _http_problems(route: HTTPRoute) -> Iterator[str]:
    for i, rule in enumerate(route.spec.rules):
        at = f"spec.rules[{i}]"
        for j, m in enumerate(rule.matches):
            if m.path.type == "RegularExpression":
                yield from _where(f"{at}.matches[{j}].path.value", regex_problem(m.path.value))
            for k, h in enumerate(m.headers):
                if h.type == "RegularExpression":
                    yield from _where(
                        f"{at}.matches[{j}].headers[{k}].value", regex_problem(h.value)
                    )
            for k, q in enumerate(m.query_params):
                if q.type == "RegularExpression":
                    yield from _where(
                        f"{at}.matches[{j}].queryParams[{k}].value", regex_problem(q.value)
                    )
        yield from _filter_problems(f"{at}.filters", rule.filters)
        for b, ref in enumerate(rule.backend_refs):
            if ref.filters:
                yield from _filter_problems(f"{at}.backendRefs[{b}].filters", ref.filters)


def _grpc_problems(route: GRPCRoute) -> Iterator[str]:
    for i, rule in enumerate(route.spec.rules):
        at = f"spec.rules[{i}]"
        for j, m in enumerate(rule.matches):
            meth = m.method
            if meth is not None and meth.type == "RegularExpression":
                for part in ("service", "method"):
                    value = getattr(meth, part)
                    if value is not None and (why := regex_problem(value)) is not None:
                        yield f"{at}.matches[{j}].method.{part}: {why}"
                        break
                else:  # each part compiles: the :path regex they make must fit too
                    whole = grpc_method_regex(meth.service, meth.method)
                    yield from _where(f"{at}.matches[{j}].method", regex_problem(whole))
            for k, h in enumerate(m.headers):
                if h.type == "RegularExpression":
                    yield from _where(
                        f"{at}.matches[{j}].headers[{k}].value", regex_problem(h.value)
                    )
        yield from _filter_problems(f"{at}.filters", rule.filters)
        for b, ref in enumerate(rule.backend_refs):
            if ref.filters:
                yield from _filter_problems(f"{at}.backendRefs[{b}].filters", ref.filters)


def _filter_problems(
    at: str, filters: Sequence[HTTPRouteFilter | GRPCRouteFilter]
) -> Iterator[str]:
    if not filters:
        return
    for f, flt in enumerate(filters):
        here = f"{at}[{f}]"
        yield from _headers(f"{here}.requestHeaderModifier", flt.request_header_modifier)
        yield from _headers(f"{here}.responseHeaderModifier", flt.response_header_modifier)
        if isinstance(flt, HTTPRouteFilter):
            if flt.request_redirect is not None:
                yield from _path(f"{here}.requestRedirect.path", flt.request_redirect.path)
            if flt.url_rewrite is not None:
                yield from _path(f"{here}.urlRewrite.path", flt.url_rewrite.path)


def _headers(at: str, mod: HTTPHeaderFilter | None) -> Iterator[str]:
    if mod is None:
        return
    for verb in ("set", "add"):
        for k, h in enumerate(getattr(mod, verb)):
            yield from _where(f"{at}.{verb}[{k}].name", host_header_problem(h.name))
            yield from _where(f"{at}.{verb}[{k}].value", control_problem(h.value))
    for k, name in enumerate(mod.remove):
        yield from _where(f"{at}.remove[{k}]", host_header_problem(name))


def _path(at: str, mod: HTTPPathModifier | None) -> Iterator[str]:
    if mod is None:
        return
    if mod.replace_full_path is not None:
        yield from _where(f"{at}.replaceFullPath", control_problem(mod.replace_full_path))
    if mod.replace_prefix_match is not None:
        yield from _where(f"{at}.replacePrefixMatch", control_problem(mod.replace_prefix_match))


def _where(field: str, problem: str | None) -> Iterator[str]:
    if problem is not None:
        yield f"{field}: {problem}"
