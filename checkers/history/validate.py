"""The slow path: validate one line and say exactly what is wrong with it.

A piece that the typed decoders reject (or whose values the contract still rejects) is decoded again
line by line here, so the error names the line and the field. Where a fast path takes a line, this
gives the same values; it also takes what they leave to it (blank lines, string processes, integer ids).
"""

from __future__ import annotations

from typing import Any

import msgspec

from checkers.history.contract import CLIENT_OPS, ENTRY_OPS, TYPES, AnyOp, Message, Value


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_range(x: Any, what: str) -> None:
    """Times, indexes and offsets are kept as 64-bit integers."""
    if x is not None and not -(2**63) <= x < 2**63:
        raise ValueError(f"{what} is out of range (a 64-bit integer)")


def _message_id(x: Any, where: str) -> str:
    """An id as the checkers keep it: a string, or an integer as its decimal string (788 and "788" are one
    id: tools such as Kafka's verifiable producer count their messages)."""
    if isinstance(x, str):
        return x
    if _is_int(x):
        return str(x)
    raise ValueError(f"{where} must be a string or an integer")


def _check_message(m: Any, where: str) -> Message:
    if not isinstance(m, dict):
        raise ValueError(f"{where} must be an object")
    if "id" not in m:
        raise ValueError(f"{where}.id is missing")
    mid = _message_id(m["id"], f"{where}.id")
    part = m.get("partition")
    if part is not None and not (_is_int(part) or isinstance(part, str)):
        raise ValueError(f"{where}.partition must be an integer, a string or null")
    off = m.get("offset")
    if off is not None and not _is_int(off):
        raise ValueError(f"{where}.offset must be an integer or null")
    _check_range(off, f"{where}.offset")
    red = m.get("redelivered", False)
    if red is None:
        red = False
    if not isinstance(red, bool):
        raise ValueError(f"{where}.redelivered must be true or false")
    return Message(id=mid, partition=part, offset=off, redelivered=red)


def check_value(f: str, typ: str, v: Any) -> Value | None:
    """Validate the operation-specific value; unknown operations keep no value."""
    if f == "send":
        if not isinstance(v, dict):
            if typ == "invoke" or v is not None:
                raise ValueError("field 'value' of a send must be an object with an 'id'")
            return None
        if "id" not in v and typ == "invoke":
            raise ValueError("field 'value.id' is missing")
        mid = _message_id(v["id"], "field 'value.id'") if "id" in v else None
        part, off = v.get("partition"), v.get("offset")
        if part is not None and not (_is_int(part) or isinstance(part, str)):
            raise ValueError("field 'value.partition' must be an integer, a string or null")
        if off is not None and not _is_int(off):
            raise ValueError("field 'value.offset' must be an integer or null")
        _check_range(off, "field 'value.offset'")
        return Value(id=mid, partition=part, offset=off, producer=v.get("producer"))
    if f in ENTRY_OPS and typ != "ok":
        # entries of fail/info polls are not deliveries; keep them when well-formed, as the fast path does
        try:
            return check_value(f, "ok", v) if isinstance(v, dict) and "messages" in v else None
        except ValueError:
            return None
    if f in ENTRY_OPS and typ == "ok":
        if not isinstance(v, dict) or "messages" not in v:
            raise ValueError(f"field 'value.messages' is missing from an ok {f}")
        msgs = v["messages"]
        if not isinstance(msgs, list):
            raise ValueError("field 'value.messages' must be a list")
        return Value(messages=[_check_message(m, f"field 'value.messages[{i}]'") for i, m in enumerate(msgs)])
    if f == "effects" and typ == "ok":
        if not isinstance(v, dict) or "counts" not in v:
            raise ValueError("field 'value.counts' is missing from an ok effects read")
        counts = v["counts"]
        if not isinstance(counts, dict):
            raise ValueError("field 'value.counts' must be an object of id -> times applied")
        for k, n in counts.items():
            if not _is_int(n) or n < 0:
                raise ValueError(f"field 'value.counts[{k!r}]' must be a non-negative integer")
            _check_range(n, f"field 'value.counts[{k!r}]'")
        return Value(counts=counts)  # type: ignore[arg-type]  # (a dict here; raw JSON from msgspec)
    if f in ("start-fault", "stop-fault") and typ != "invoke":
        if not isinstance(v, dict) or not isinstance(v.get("fault"), str):
            raise ValueError(f"field 'value.fault' (a string) is missing from {f}")
        return Value(fault=v["fault"], nodes=v.get("nodes"))
    return None


def check_line(raw: bytes) -> AnyOp:
    try:
        obj = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise ValueError(f"not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError("an operation must be a JSON object")
    for name in ("time", "process", "type", "f"):
        if name not in obj:
            raise ValueError(f"field '{name}' is missing")
    if not _is_int(obj["time"]):
        raise ValueError("field 'time' must be an integer (nanoseconds)")
    _check_range(obj["time"], "field 'time'")
    proc = obj["process"]
    if not (_is_int(proc) or isinstance(proc, str)):
        raise ValueError("field 'process' must be an integer or a string")
    typ = obj["type"]
    if typ not in TYPES:
        raise ValueError(f"field 'type' must be one of {', '.join(TYPES)} (got {typ!r}): unknown type")
    f = obj["f"]
    if not isinstance(f, str):
        raise ValueError("field 'f' must be a string")
    idx = obj.get("index")
    if idx is not None and not _is_int(idx):
        raise ValueError("field 'index' must be an integer")
    _check_range(idx, "field 'index'")
    try:
        value = check_value(f, typ, obj.get("value"))
    except ValueError:
        if f in CLIENT_OPS or f in ("effects", "start-fault", "stop-fault"):
            raise
        value = None
    return AnyOp(time=obj["time"], process=proc, type=typ, f=f, value=value, index=idx)


