"""Keys, read from the file when a DataFrame view asks for them.

No checker reads keys, so the reader does not keep them (they are most of a line's bytes after the ids);
`History.ops`, `sends`, `messages` and `deliveries` read them here, from the same byte ranges, and refuse a
file that changed since it was read.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from checkers.history.contract import ENTRY_OPS, HistoryError
from checkers.history.validate import check_value


def read_keys(path: str, spans: list[tuple[int, int, bool]], stamp: tuple[int, int]) -> tuple[list, list]:
    """Keys of send operations and of poll entries (the ones the reader keeps), in file order."""
    st = os.stat(path)
    if (st.st_size, st.st_mtime_ns) != stamp:
        raise HistoryError(f"{path}: the file changed since it was read (keys are read from it on demand)")
    dec = msgspec.json.Decoder()
    send: list[Any] = []
    msg: list[Any] = []
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
                    send.append(v.get("key") if isinstance(v, dict) else None)
                elif f in ENTRY_OPS and typ != "invoke" and isinstance(v, dict) and "messages" in v:
                    try:
                        check_value(f, "ok", v)  # entries of fail/info polls are kept only when well-formed
                    except ValueError:
                        continue
                    msg += [m.get("key") for m in v["messages"]]
    return send, msg
