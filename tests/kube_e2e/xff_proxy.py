"""A minimal HTTP/1.1 front proxy for the source-IP tests: it appends the address of the
client it saw to X-Forwarded-For, as any proxy in front of a Gateway does, and forwards
one request per connection to UPSTREAM_HOST:UPSTREAM_PORT.

    python xff_proxy.py LISTEN_HOST LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT

Prints "ready" once listening. Run inside a node's network namespace, it is a hop with
an address of its own between the host's client and the load balancer's address."""

from __future__ import annotations

import asyncio
import sys


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: tuple[str, int]
) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        client = writer.get_extra_info("peername")[0]
        lines = head.decode("latin-1").split("\r\n")[:-2]
        out, seen = [lines[0]], False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "x-forwarded-for":
                line, seen = f"{name}: {value.strip()},{client}", True
            elif name.strip().lower() == "connection":
                continue
            out.append(line)
        if not seen:
            out.append(f"X-Forwarded-For: {client}")
        out.append("Connection: close")
        # From the address it listens on (the node's), not the one the kernel would pick
        # for a local destination (the destination itself).
        source = (writer.get_extra_info("sockname")[0], 0)
        up_reader, up_writer = await asyncio.open_connection(*upstream, local_addr=source)
        up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
        await up_writer.drain()
        while chunk := await up_reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        up_writer.close()
    finally:
        writer.close()


async def main(host: str, port: int, upstream: tuple[str, int]) -> None:
    server = await asyncio.start_server(lambda r, w: _handle(r, w, upstream), host, port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), (sys.argv[3], int(sys.argv[4]))))
