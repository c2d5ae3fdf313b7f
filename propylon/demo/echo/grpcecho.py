"""The conformance suite's gRPC echo (``gateway_api_conformance.echo_basic.grpcecho``).

``GrpcEcho/Echo`` and ``GrpcEcho/EchoTwo`` answer with ``Assertions`` describing the call
(fully qualified method, metadata, ``:authority``, and who served it); ``EchoThree`` is
left unimplemented, as upstream. Messages are built at run time from a descriptor (the
Python spelling of upstream's ``grpcecho.proto``), in a private descriptor pool.
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

# protobuf ships no type stubs here (types-protobuf is not a dependency).
from google.protobuf import (  # type: ignore[import-untyped,unused-ignore]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)
from google.protobuf.message import Message  # type: ignore[import-untyped,unused-ignore]

from propylon.demo.echo.server import EchoContext

PACKAGE = "gateway_api_conformance.echo_basic.grpcecho"
SERVICE = "GrpcEcho"
SERVICE_FULL_NAME = f"{PACKAGE}.{SERVICE}"
IMPLEMENTED = ("Echo", "EchoTwo")
METHODS = ("Echo", "EchoTwo", "EchoThree")

_F = descriptor_pb2.FieldDescriptorProto


def _file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="grpcecho.proto", package=PACKAGE, syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, str | None, bool]) -> None:
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, type_name, repeated in fields:
            field = msg.field.add(
                name=fname,
                number=number,
                type=ftype,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if type_name:
                field.type_name = f".{PACKAGE}.{type_name}"

    s, m = _F.TYPE_STRING, _F.TYPE_MESSAGE
    message("Header", ("key", 1, s, None, False), ("value", 2, s, None, False))
    message(
        "Context",
        ("namespace", 1, s, None, False),
        ("ingress", 2, s, None, False),
        ("service_name", 3, s, None, False),
        ("pod", 4, s, None, False),
    )
    message(
        "TLSAssertions",
        ("version", 1, s, None, False),
        ("negotiated_protocol", 2, s, None, False),
        ("server_name", 3, s, None, False),
        ("cipher_suite", 4, s, None, False),
        ("peer_certificates", 5, s, None, True),
    )
    message(
        "Assertions",
        ("fully_qualified_method", 1, s, None, False),
        ("headers", 2, m, "Header", True),
        ("authority", 3, s, None, False),
        ("context", 4, m, "Context", False),
        ("tls_assertions", 5, m, "TLSAssertions", False),
    )
    message("EchoRequest")
    message(
        "EchoResponse",
        ("assertions", 1, m, "Assertions", False),
        ("request", 2, m, "EchoRequest", False),
    )
    service = fdp.service.add(name=SERVICE)
    for method in METHODS:
        service.method.add(
            name=method,
            input_type=f".{PACKAGE}.EchoRequest",
            output_type=f".{PACKAGE}.EchoResponse",
        )
    return fdp


POOL = descriptor_pool.DescriptorPool()
POOL.Add(_file_descriptor_proto())
EchoRequest: type[Message] = message_factory.GetMessageClass(
    POOL.FindMessageTypeByName(f"{PACKAGE}.EchoRequest")
)
EchoResponse: type[Message] = message_factory.GetMessageClass(
    POOL.FindMessageTypeByName(f"{PACKAGE}.EchoResponse")
)


def method_path(method: str) -> str:
    return f"/{SERVICE_FULL_NAME}/{method}"


def parse_response(data: bytes) -> Any:
    """An ``EchoResponse`` (fields read as attributes)."""
    return EchoResponse.FromString(data)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _handler(method: str, context: EchoContext) -> Any:
    async def handle(_request: Any, call: grpc.aio.ServicerContext) -> Any:
        response: Any = EchoResponse()
        assertions = response.assertions
        assertions.fully_qualified_method = method_path(method)
        authority = ""
        for key, value in call.invocation_metadata() or ():
            if key == ":authority":
                authority = str(value)
                continue
            header = assertions.headers.add()
            header.key = key
            header.value = value if isinstance(value, str) else value.decode("latin-1")
        assertions.authority = authority
        assertions.context.namespace = context.namespace
        assertions.context.ingress = context.ingress
        assertions.context.service_name = context.service
        assertions.context.pod = context.pod
        return response

    return handle


async def serve_grpc_echo(
    host: str, port: int, context: EchoContext
) -> tuple[grpc.aio.Server, int]:
    """Start the plaintext (h2c) gRPC echo; returns the server and its bound port."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE_FULL_NAME,
                {
                    name: grpc.unary_unary_rpc_method_handler(
                        _handler(name, context),
                        request_deserializer=EchoRequest.FromString,
                        response_serializer=_serialize,
                    )
                    for name in IMPLEMENTED
                },
            ),
        )
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound
