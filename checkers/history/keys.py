"""Keys and whole values, read from the file when someone asks for them.

No checker of queue histories reads keys or the rest of a value, so the reader does not keep them (they are
most of a line's bytes after the ids); `History.ops`, `sends`, `messages` and `deliveries` read keys here, and
the idempotency checker the values of API requests (small histories), from the same byte ranges. A file that
changed since it was read is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import msgspec

from checkers.history.contract import ENTRY_OPS, HistoryError
from checkers.history.validate import check_value


def _kept(path: str, spans: list[tuple[int, int, bool]], stamp: tuple[int, int]) -> Iterator[tuple[bool, Any]]:
    """What the reader kept, in file order: (True, a send's value) for each send operation, (False, its
    entries) for each poll or final-read completion whose entries it kept."""
    st = os.stat(path)
    if (st.st_size, st.st_mtime_ns) != stamp:
        raise HistoryError(f"{path}: the file changed since it was read (keys are read from it on demand)")
    dec = msgspec.json.Decoder()
    with open(path, "rb") as fh:
        for start, end, _ in spans:
            fh.seek(start)
            for raw in fh.read(end - start).split(b"\n"):
                if not raw.strip():
                    continue
                try:
                    obj = dec.decode(raw)
                except msgspec.DecodeError:  # the truncated last line, which the reader ignored too
                    continue
                f, typ, v = obj.get("f"), obj.get("type"), obj.get("value")
                if f == "send":
                    yield True, v
                elif f in ENTRY_OPS and typ != "invoke" and isinstance(v, dict) and "messages" in v:
                    try:
                        check_value(f, "ok", v)  # entries of fail/info polls are kept only when well-formed
                    except ValueError:
                        continue
                    yield False, v["messages"]


def read_keys(path: str, spans: list[tuple[int, int, bool]], stamp: tuple[int, int]) -> tuple[list, list]:
    """Keys of send operations and of poll entries (the ones the reader keeps), in file order."""
    send: list[Any] = []
    msg: list[Any] = []
    for is_send, v in _kept(path, spans, stamp):
        if is_send:
            send.append(v.get("key") if isinstance(v, dict) else None)
        else:
            msg += [m.get("key") for m in v]
    return send, msg


def read_values(path: str, spans: list[tuple[int, int, bool]], stamp: tuple[int, int]) -> tuple[list, list]:
    """The values of send operations (a dict, or None) and the poll entries the reader keeps (dicts), in file
    order: what a checker of a few thousand API requests reads beside the columns."""
    send: list[Any] = []
    msg: list[Any] = []
    for is_send, v in _kept(path, spans, stamp):
        if is_send:
            send.append(v if isinstance(v, dict) else None)
        else:
            msg += v
    return send, msg

