"""A minimal RFC 6455 websocket echo: the handshake and a frame echo loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct

from propylon.demo._http1 import Request, Response, UpgradeHandler

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_FRAME = 16 * 1024 * 1024

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    digest = hashlib.sha1((key + _GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def is_websocket_request(request: Request) -> bool:
    upgrade = (request.header("upgrade") or "").lower()
    return upgrade == "websocket" and "upgrade" in request.connection_tokens()


def handshake(request: Request, on_open: UpgradeHandler | None = None) -> Response:
    """The 101 answer to a websocket upgrade request, or 400 when it is not a valid one."""
    key = request.header("sec-websocket-key")
    if request.method != "GET" or not is_websocket_request(request) or not key:
        return Response(400, [("Content-Type", "text/plain")], b"expected a websocket upgrade\n")
    if request.header("sec-websocket-version") != "13":
        return Response(426, [("Sec-WebSocket-Version", "13")], b"")
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    return Response(101, headers, upgrade=on_open or echo_frames)


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None
) -> bytes:
    head = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(head) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[bool, int, bytes]:
    """One frame: ``(fin, opcode, unmasked payload)``."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    if n > MAX_FRAME:
        raise ValueError("websocket frame too large")
    mask = await reader.readexactly(4) if b1 & 0x80 else b""
    payload = await reader.readexactly(n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bool(b0 & 0x80), b0 & 0x0F, payload


async def echo_frames(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send every data frame back as it came; answer pings; close when asked."""
    while True:
        try:
            fin, opcode, payload = await read_frame(reader)
        except (asyncio.IncompleteReadError, ValueError):
            return
        if opcode == OP_CLOSE:
            writer.write(encode_frame(OP_CLOSE, payload[:2]))
            await writer.drain()
            return
        if opcode == OP_PING:
            writer.write(encode_frame(OP_PONG, payload))
        elif opcode in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
            writer.write(encode_frame(opcode, payload, fin=fin))
        await writer.drain()
