"""``test.v1`` messages built at run time, so no generated ``_pb2`` code is needed.

The descriptor below is the Python spelling of ``proto/test/v1/test.proto`` (shipped
for users); ``tests/demo`` checks that the two agree. It lives in a private descriptor
pool so it can never clash with another registration of ``test/v1/test.proto``.
"""

from __future__ import annotations

from typing import Any

# protobuf ships no type stubs here (types-protobuf is not a dependency).
from google.protobuf import (  # type: ignore[import-untyped,unused-ignore]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)
from google.protobuf.message import Message  # type: ignore[import-untyped,unused-ignore]

PACKAGE = "test.v1"
SERVICE = "TestService"
METHOD = "Ping"
SERVICE_FULL_NAME = f"{PACKAGE}.{SERVICE}"
PING_PATH = f"/{SERVICE_FULL_NAME}/{METHOD}"
PROTO_FILE = "test/v1/test.proto"

_F = descriptor_pb2.FieldDescriptorProto


def file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto of ``test/v1/test.proto``."""
    fdp = descriptor_pb2.FileDescriptorProto(name=PROTO_FILE, package=PACKAGE, syntax="proto3")
    fdp.options.go_package = "test/v1;testv1"

    request = fdp.message_type.add(name="PingRequest")
    request.field.add(
        name="message", json_name="message", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL
    )

    response = fdp.message_type.add(name="PingResponse")
    response.field.add(
        name="message", json_name="message", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL
    )
    response.field.add(
        name="server_time_ms",
        json_name="serverTimeMs",
        number=2,
        type=_F.TYPE_INT64,
        label=_F.LABEL_OPTIONAL,
    )

    service = fdp.service.add(name=SERVICE)
    service.method.add(
        name=METHOD,
        input_type=f".{PACKAGE}.PingRequest",
        output_type=f".{PACKAGE}.PingResponse",
    )
    return fdp


POOL = descriptor_pool.DescriptorPool()
FILE_DESCRIPTOR = POOL.Add(file_descriptor_proto())

PingRequest: type[Message] = message_factory.GetMessageClass(
    POOL.FindMessageTypeByName(f"{PACKAGE}.PingRequest")
)
PingResponse: type[Message] = message_factory.GetMessageClass(
    POOL.FindMessageTypeByName(f"{PACKAGE}.PingResponse")
)


def ping_request(message: str) -> Message:
    return PingRequest(message=message)


def ping_response(message: str, server_time_ms: int) -> Message:
    return PingResponse(message=message, server_time_ms=server_time_ms)


def request_message(request: Message) -> str:
    fields: Any = request
    return str(fields.message)


def response_fields(response: Message) -> tuple[str, int]:
    fields: Any = response
    return str(fields.message), int(fields.server_time_ms)


def serialize(message: Message) -> bytes:
    return message.SerializeToString()


def parse_request(data: bytes) -> Message:
    return PingRequest.FromString(data)


def parse_response(data: bytes) -> Message:
    return PingResponse.FromString(data)
