"""The lossy disks' control socket, shared by onceproof's daemon and the LazyFS wrapper: a Unix socket (a path,
or `@name` for an abstract one: no file, gone with the process) answering one JSON line with one JSON line,
`{"op": "drop"}` -> `{"files": N, "bytes": B}`, or `{"error": "..."}` when the command failed."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

Commands = Mapping[str, Callable[[], dict[str, Any]]]


def serve(path: str, commands: Commands) -> None:
    """Answer commands at `path` until the process ends, one connection at a time."""
    if path.startswith("@"):
        address = "\0" + path[1:]
    else:
        address = path
        if os.path.exists(path):
            os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(address)
    srv.listen(8)
    while True:
        conn, _ = srv.accept()
        with conn, conn.makefile("rwb") as f:
            try:
                op = json.loads(f.readline() or b"{}").get("op")
                answer = commands[op]() if op in commands else {"error": f"unknown op {op!r}"}
            except Exception as e:  # a command that failed says why; the disk goes on
                answer = {"error": f"{type(e).__name__}: {e}"}
            f.write(json.dumps(answer).encode() + b"\n")
            f.flush()
