"""A TCP proxy on 127.0.0.1 that adds a fixed one-way delay in each direction (tc netem is not
available here). Every chunk read from one side is written to the other side ``delay`` seconds
after it was read, in order; the payload is never looked at, so TLS passes through and the
client still verifies the server's own certificate (the proxy listens on 127.0.0.1 too).

With ``--delay-ms 10`` a request/answer exchange costs about 20 ms more: a 20 ms round trip.
One thing it does not delay: the TCP handshake with the proxy itself (the kernel completes it
before we see the connection), so a new connection costs about one round trip less than on a
real link with the same delay. The server's greeting is delayed as usual.

Usage (stand-alone): python bench/delay_proxy.py --delay-ms 10 127.0.0.1:587 [HOST:PORT ...]
prints one ``LISTEN <port> -> HOST:PORT`` line per target, then ``READY``, and runs until
killed. ``start_proxy()`` runs it as a child process for a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
from pathlib import Path

CHUNK = 65536


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy one direction: each chunk is written ``delay`` seconds after it was read. The
    writes are loop timers (held by the loop, run in time order), so order is kept and no
    task waits on anything but the socket. Returns once EOF (or an error) has been read."""
    loop = asyncio.get_running_loop()

    def write(data: bytes) -> None:
        if writer.is_closing():
            return
        with contextlib.suppress(OSError, RuntimeError):
            if data:
                writer.write(data)
            elif writer.can_write_eof():
                writer.write_eof()

    while True:
        try:
            data = await reader.read(CHUNK)
        except OSError:
            data = b""
        loop.call_at(loop.time() + delay, write, data)
        if not data:
            return


_ACTIVE: set[asyncio.Task] = set()  # strong references: a pending task must not be collected


async def _handle(
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
    target: tuple[str, int],
    delay: float,
) -> None:
    task = asyncio.current_task()
    if task is not None:
        _ACTIVE.add(task)
    try:
        try:
            server_r, server_w = await asyncio.open_connection(*target)
        except OSError:
            client_w.close()
            return
        _nodelay(client_w)
        _nodelay(server_w)
        try:
            await asyncio.gather(_pump(client_r, server_w, delay), _pump(server_r, client_w, delay))
            await asyncio.sleep(delay)  # let the last delayed writes go out
        finally:
            for w in (client_w, server_w):
                with contextlib.suppress(OSError):
                    w.close()
    finally:
        _ACTIVE.discard(task)  # type: ignore[arg-type]


async def serve(targets: list[tuple[str, int]], delay: float, port: int = 0) -> None:
    servers = []
    for i, target in enumerate(targets):

        async def handler(r, w, target=target):
            await _handle(r, w, target, delay)

        server = await asyncio.start_server(
            handler, "127.0.0.1", port + i if port else 0, backlog=512
        )
        servers.append(server)
        listen_port = server.sockets[0].getsockname()[1]
        print(f"LISTEN {listen_port} -> {target[0]}:{target[1]}", flush=True)
    print("READY", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def start_proxy(
    targets: list[tuple[str, int]], delay_ms: float
) -> tuple[subprocess.Popen, list[int]]:
    """Run the proxy as a child process; returns it and the port listening for each target.
    Stop it with ``proc.terminate()``."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--delay-ms",
            str(delay_ms),
            *(f"{h}:{p}" for h, p in targets),
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    ports = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("LISTEN "):
            ports.append(int(line.split()[1]))
        elif line.strip() == "READY":
            return proc, ports
    proc.terminate()
    raise RuntimeError(f"delay proxy exited at start-up (code {proc.wait()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay (10)")
    parser.add_argument("--port", type=int, default=0, help="first listening port (any)")
    parser.add_argument("targets", nargs="+", metavar="HOST:PORT")
    args = parser.parse_args()
    targets = []
    for t in args.targets:
        host, _, port = t.rpartition(":")
        targets.append((host, int(port)))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(targets, args.delay_ms / 1000.0, args.port))


if __name__ == "__main__":
    main()
