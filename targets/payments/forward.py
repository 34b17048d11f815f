"""A TCP forwarder: accepts on a port and relays each connection, both ways, to an upstream address. It puts
a harness node in front of something the harness does not start (`--service-url`: the user's running service)
and gives the provider a fixed address that still passes through its proxy (`--provider-port`), so network
faults apply on both hops. Run: `python -m targets.payments.forward PORT BIND UPSTREAM_HOST:PORT`."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _relay(client: socket.socket, upstream: tuple[str, int]) -> None:
    try:
        server = socket.create_connection(upstream, timeout=5)
    except OSError:
        client.close()
        return
    server.settimeout(None)
    threading.Thread(target=_pipe, args=(server, client), daemon=True).start()
    _pipe(client, server)
    client.close()
    server.close()


def serve(port: int, bind: str, upstream: str) -> None:
    """Relay every connection to `upstream` ("host:port") until the process ends."""
    host, up_port = upstream.rsplit(":", 1)
    listener = socket.create_server((bind, port), reuse_port=False)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_relay, args=(client, (host, int(up_port))), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m targets.payments.forward PORT BIND UPSTREAM_HOST:PORT", file=sys.stderr)
        return 2
    print(f"forward: {argv[1]}:{argv[0]} -> {argv[2]}", flush=True)
    serve(int(argv[0]), argv[1], argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
