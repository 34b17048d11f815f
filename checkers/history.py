"""Read a history (contract v1, JSON Lines) into a columnar form for the checkers.

The reader lives beside the checkers and imports nothing from the rest of
onceproof, so `onceproof check` works on any history, including ones written by
a user's own producers and consumers.

Speed matters (histories of millions of operations), so the common case is
decoded by msgspec straight into typed structs, chunk by chunk, and turned into
numpy/pandas columns. When a chunk does not fit the fast typed decoder (a bad
line, or an unusual but legal value), it is decoded again line by line by a
slow path that either accepts the line or names exactly what is wrong with it.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import pandas as pd

TYPES = ("invoke", "ok", "fail", "info")
CLIENT_OPS = ("send", "poll", "ack")
NEMESIS = "nemesis"
CHUNK_BYTES = 32 << 20


class HistoryError(Exception):
    """A history that does not follow the contract; the message names file, line and field."""


# --- fast-path structs ---------------------------------------------------------------------------


class Message(msgspec.Struct, gc=False):
    id: str
    key: Any = None
    partition: int | str | None = None
    offset: int | None = None
    redelivered: bool = False


class Value(msgspec.Struct, gc=False):
    id: str | None = None
    key: Any = None
    partition: int | str | None = None
    offset: int | None = None
    messages: list[Message] | None = None
    counts: dict[str, int] | None = None
    fault: str | None = None
    nodes: Any = None
    producer: Any = None


class Op(msgspec.Struct, gc=False):
    time: int
    process: int | str
    type: Literal["invoke", "ok", "fail", "info"]
    f: str
    value: Value | None = None
    index: int | None = None


_OP_DECODER = msgspec.json.Decoder(Op)


# --- slow path: validate one line and say exactly what is wrong -----------------------------------


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_message(m: Any, where: str) -> Message:
    if not isinstance(m, dict):
        raise ValueError(f"{where} must be an object")
    if "id" not in m:
        raise ValueError(f"{where}.id is missing")
    if not isinstance(m["id"], str):
        raise ValueError(f"{where}.id must be a string")
    part = m.get("partition")
    if part is not None and not (_is_int(part) or isinstance(part, str)):
        raise ValueError(f"{where}.partition must be an integer, a string or null")
    off = m.get("offset")
    if off is not None and not _is_int(off):
        raise ValueError(f"{where}.offset must be an integer or null")
    red = m.get("redelivered", False)
    if red is None:
        red = False
    if not isinstance(red, bool):
        raise ValueError(f"{where}.redelivered must be true or false")
    return Message(id=m["id"], key=m.get("key"), partition=part, offset=off, redelivered=red)


def _check_value(f: str, typ: str, v: Any) -> Value | None:
    """Validate the operation-specific value; unknown operations keep no value."""
    if f == "send":
        if not isinstance(v, dict):
            if typ == "invoke" or v is not None:
                raise ValueError("field 'value' of a send must be an object with an 'id'")
            return None
        if "id" not in v:
            if typ == "invoke":
                raise ValueError("field 'value.id' is missing")
        elif not isinstance(v["id"], str):
            raise ValueError("field 'value.id' must be a string")
        part, off = v.get("partition"), v.get("offset")
        if part is not None and not (_is_int(part) or isinstance(part, str)):
            raise ValueError("field 'value.partition' must be an integer, a string or null")
        if off is not None and not _is_int(off):
            raise ValueError("field 'value.offset' must be an integer or null")
        return Value(id=v.get("id"), key=v.get("key"), partition=part, offset=off, producer=v.get("producer"))
    if f == "poll" and typ == "ok":
        if not isinstance(v, dict) or "messages" not in v:
            raise ValueError("field 'value.messages' is missing from an ok poll")
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
        return Value(counts=counts)
    if f in ("start-fault", "stop-fault"):
        if not isinstance(v, dict) or not isinstance(v.get("fault"), str):
            raise ValueError(f"field 'value.fault' (a string) is missing from {f}")
        return Value(fault=v["fault"], nodes=v.get("nodes"))
    return None


def _check_line(raw: bytes) -> Op:
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
    try:
        value = _check_value(f, typ, obj.get("value"))
    except ValueError:
        if f in CLIENT_OPS or f in ("effects", "start-fault", "stop-fault"):
            raise
        value = None
    return Op(time=obj["time"], process=proc, type=typ, f=f, value=value, index=idx)


# --- columns -------------------------------------------------------------------------------------


@dataclass
class _Columns:
    line: list[np.ndarray] = field(default_factory=list)
    index: list[Any] = field(default_factory=list)
    time: list[np.ndarray] = field(default_factory=list)
    process: list[Any] = field(default_factory=list)
    type: list[Any] = field(default_factory=list)
    f: list[Any] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def add(self, ops: list[Op], lines: np.ndarray) -> None:
        self.line.append(lines)
        self.time.append(np.fromiter([o.time for o in ops], dtype=np.int64, count=len(ops)))
        self.index.extend([o.index for o in ops])
        self.process.extend([o.process for o in ops])
        self.type.extend([o.type for o in ops])
        self.f.extend([o.f for o in ops])
        self.values.extend([o.value for o in ops])


def _decode_chunk(chunk: bytes, first_line: int, cols: _Columns, path: str, is_last: bool,
                  warnings: list[str]) -> None:
    """Decode the lines of `chunk` (first one numbered `first_line`, 1-based) into `cols`."""
    if b"\n\n" not in chunk and not chunk.startswith(b"\n") and b"\r" not in chunk:
        try:
            ops = _OP_DECODER.decode_lines(chunk)
            ok = True
        except (msgspec.DecodeError, msgspec.ValidationError):
            ok = False
        if ok and not _suspects(ops):
            n = len(ops)
            cols.add(ops, np.arange(first_line, first_line + n, dtype=np.int64))
            return
    # slow path: one line at a time, exact errors
    lines = chunk.split(b"\n")
    ops, nums = [], []
    last_nonblank = max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            op = _check_line(raw)
        except ValueError as e:
            if is_last and i == last_nonblank and str(e).startswith("not valid JSON"):
                warnings.append(f"{path}:{first_line + i}: last line is truncated; ignored")
                continue
            raise HistoryError(f"{path}:{first_line + i}: {e}") from None
        ops.append(op)
        nums.append(first_line + i)
    cols.add(ops, np.asarray(nums, dtype=np.int64))


def _suspects(ops: list[Op]) -> bool:
    """True when the typed decoder let through a value the contract still rejects."""
    for o in ops:
        v = o.value
        if o.f == "send":
            if o.type == "invoke" and (v is None or v.id is None):
                return True
        elif o.type == "invoke" or o.f not in ("poll", "effects", "start-fault", "stop-fault"):
            continue
        elif o.f == "poll":
            if o.type == "ok" and (v is None or v.messages is None):
                return True
        elif o.f == "effects":
            if o.type == "ok" and (v is None or v.counts is None or any(n < 0 for n in v.counts.values())):
                return True
        elif v is None or v.fault is None:
            return True
    return False


def _iter_chunks(path: Path):
    """Yield (bytes, first 1-based line number, is_last) split on line boundaries."""
    size = path.stat().st_size
    line_no, done = 1, 0
    with open(path, "rb") as fh:
        rest = b""
        while True:
            block = fh.read(CHUNK_BYTES)
            if not block:
                if rest:
                    yield rest, line_no, True
                return
            data = rest + block
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            chunk, rest = data[: cut + 1], data[cut + 1 :]
            done += len(chunk)
            yield chunk, line_no, done >= size
            line_no += chunk.count(b"\n")


# --- the columnar history ------------------------------------------------------------------------


@dataclass
class History:
    """One history as columns. `ops` has one row per operation in history order."""

    source: str
    ops: pd.DataFrame
    values: list[Any]
    warnings: list[str] = field(default_factory=list)

    # ops columns: line, index, time, process, proc, type, f, pair (row of the matching
    # invoke/completion or -1), id, key, partition, offset

    def __len__(self) -> int:
        return len(self.ops)

    @cached_property
    def sends(self) -> pd.DataFrame:
        """One row per send invoke: id, key, process, times, lines and outcome."""
        ops = self.ops
        inv = ops[(ops["f"] == "send") & (ops["type"] == "invoke")]
        pair = inv["pair"].to_numpy()
        has = pair >= 0
        out = pd.DataFrame({
            "id": pd.Series(inv["id"].to_numpy(), dtype=object),
            "key": pd.Series(inv["key"].to_numpy(), dtype=object),
            "process": pd.Series(inv["process"].to_numpy(), dtype=object),
            "invoke_time": inv["time"].to_numpy(),
            "invoke_line": inv["line"].to_numpy(),
            "row": inv.index.to_numpy(),
        })
        safe = np.where(has, pair, 0)
        ctype = ops["type"].to_numpy()[safe].astype(object)
        ctype[~has] = "open"
        out["outcome"] = pd.Series(ctype, dtype=object)
        out["complete_time"] = np.where(has, ops["time"].to_numpy()[safe], -1)
        out["complete_line"] = np.where(has, ops["line"].to_numpy()[safe], -1)
        out["partition"] = pd.Series(np.where(has, ops["partition"].to_numpy()[safe], None), dtype=object)
        offs = ops["offset"].to_numpy()[safe]
        out["offset"] = np.where(has, offs, -1)
        return out

    @cached_property
    def messages(self) -> pd.DataFrame:
        """One row per message entry of a poll completion (ok, fail or info)."""
        ops = self.ops
        rows = np.flatnonzero((ops["f"].to_numpy() == "poll") & (ops["type"].to_numpy() != "invoke"))
        op_rows, ids, keys, parts, offs, red, seq = [], [], [], [], [], [], []
        values = self.values
        for r in rows.tolist():
            v = values[r]
            if v is None or not v.messages:
                continue
            msgs = v.messages
            n = len(msgs)
            op_rows.extend([r] * n)
            seq.extend(range(n))
            ids.extend([m.id for m in msgs])
            keys.extend([m.key for m in msgs])
            parts.extend([m.partition for m in msgs])
            offs.extend([-1 if m.offset is None else m.offset for m in msgs])
            red.extend([m.redelivered for m in msgs])
        op_rows_a = np.asarray(op_rows, dtype=np.int64)
        return pd.DataFrame({
            "op": op_rows_a,
            "seq": np.asarray(seq, dtype=np.int64),
            "line": ops["line"].to_numpy()[op_rows_a],
            "time": ops["time"].to_numpy()[op_rows_a],
            "process": pd.Series(ops["process"].to_numpy()[op_rows_a], dtype=object),
            "proc": ops["proc"].to_numpy()[op_rows_a],
            "type": pd.Series(ops["type"].to_numpy()[op_rows_a].astype(object), dtype=object),
            "id": pd.Series(ids, dtype=object),
            "key": pd.Series(keys, dtype=object),
            "partition": pd.Series(parts, dtype=object),
            "offset": np.asarray(offs, dtype=np.int64),
            "redelivered": np.asarray(red, dtype=bool),
        })

    @cached_property
    def deliveries(self) -> pd.DataFrame:
        """Entries of ok polls: each one is a delivery."""
        m = self.messages
        return m[m["type"] == "ok"].reset_index(drop=True)

    @cached_property
    def effects(self) -> dict[str, int] | None:
        """Counts of the last ok `effects` read, or None when the history has none."""
        ops = self.ops
        rows = np.flatnonzero((ops["f"].to_numpy() == "effects") & (ops["type"].to_numpy() == "ok"))
        if len(rows) == 0:
            return None
        v = self.values[int(rows[-1])]
        return dict(v.counts) if v is not None and v.counts is not None else {}

    @cached_property
    def faults(self) -> pd.DataFrame:
        """Fault windows: fault, nodes, start, stop (end of history when never stopped)."""
        ops = self.ops
        f = ops["f"].to_numpy()
        rows = np.flatnonzero(((f == "start-fault") | (f == "stop-fault")) & (ops["type"].to_numpy() != "invoke"))
        end = int(ops["time"].max()) if len(ops) else 0
        open_: dict[tuple, list[tuple[int, int, Any]]] = {}
        windows = []
        for r in rows.tolist():
            v = self.values[r]
            nodes = v.nodes if v is not None else None
            name = v.fault if v is not None else "?"
            t, line = int(ops["time"].iat[r]), int(ops["line"].iat[r])
            if f[r] == "start-fault":
                open_.setdefault((name, _freeze(nodes)), []).append((t, line, nodes))
                continue
            starts = open_.get((name, _freeze(nodes)))
            if not starts:  # a stop naming other nodes heals the oldest open window of that fault
                starts = next((s for k, s in open_.items() if k[0] == name and s), None)
            if starts:
                t0, l0, n0 = starts.pop(0)
                windows.append((name, n0, t0, t, l0, False))
        for key, starts in open_.items():
            for t0, l0, n0 in starts:
                windows.append((key[0], n0, t0, end, l0, True))
        windows.sort(key=lambda w: w[2])
        return pd.DataFrame(windows, columns=["fault", "nodes", "start", "stop", "line", "unhealed"])


def _freeze(x: Any) -> Any:
    if isinstance(x, list):
        return tuple(_freeze(i) for i in x)
    if isinstance(x, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in x.items()))
    return x


def resolve_history_path(path: str | os.PathLike) -> Path:
    """A run directory holding history.jsonl, or a history file."""
    p = Path(path)
    if p.is_dir():
        p = p / "history.jsonl"
    if not p.exists():
        raise HistoryError(f"{p}: no such history file")
    if not p.is_file():
        raise HistoryError(f"{p}: not a regular file")
    return p


def read_history(path: str | os.PathLike) -> History:
    """Read and validate a history file (or run directory) into a History."""
    p = resolve_history_path(path)
    name = str(p)
    cols = _Columns()
    warnings: list[str] = []
    was_enabled = gc.isenabled()
    gc.disable()  # millions of small objects: the cyclic GC would only rescan them
    try:
        for chunk, first, is_last in _iter_chunks(p):
            _decode_chunk(chunk, first, cols, name, is_last, warnings)
    finally:
        if was_enabled:
            gc.enable()
    return _build(name, cols, warnings)


def _build(name: str, cols: _Columns, warnings: list[str]) -> History:
    line = np.concatenate(cols.line) if cols.line else np.zeros(0, dtype=np.int64)
    time = np.concatenate(cols.time) if cols.time else np.zeros(0, dtype=np.int64)
    n = len(line)
    if any(i is not None for i in cols.index):
        index = np.fromiter((ln - 1 if i is None else i for i, ln in zip(cols.index, line.tolist(), strict=True)),
                            dtype=np.int64, count=n)
    else:
        index = line - 1
    order = np.argsort(index, kind="stable")
    if not np.array_equal(order, np.arange(n)):
        line, time, index = line[order], time[order], index[order]
        pick = order.tolist()
        process = [cols.process[i] for i in pick]
        types = [cols.type[i] for i in pick]
        fs = [cols.f[i] for i in pick]
        values = [cols.values[i] for i in pick]
    else:
        process, types, fs, values = cols.process, cols.type, cols.f, cols.values
    proc_codes, _ = pd.factorize(pd.Series(process, dtype=object)) if n else (np.zeros(0, np.int64), None)
    type_cat = pd.Categorical(types, categories=list(TYPES))
    f_cat = pd.Categorical(fs)
    ops = pd.DataFrame({
        "line": line,
        "index": index,
        "time": time,
        "process": pd.Series(process, dtype=object),
        "proc": np.asarray(proc_codes, dtype=np.int64),
        "type": type_cat,
        "f": f_cat,
    })
    ops["pair"] = _pair(ops, name)
    _send_fields(ops, values)
    return History(source=name, ops=ops, values=values, warnings=warnings)


def _pair(ops: pd.DataFrame, name: str) -> np.ndarray:
    """Match each completion to the latest open invoke of its process (row numbers, -1 for none)."""
    n = len(ops)
    pair = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return pair
    proc = ops["proc"].to_numpy()
    is_inv = (ops["type"].cat.codes.to_numpy() == 0)
    nemesis = ops["process"].to_numpy() == NEMESIS
    client = ~nemesis
    rows = np.flatnonzero(client)
    order = rows[np.lexsort((rows, proc[rows]))]
    p, inv = proc[order], is_inv[order]
    same_prev = np.zeros(len(order), dtype=bool)
    same_prev[1:] = p[1:] == p[:-1]
    prev_inv = np.zeros(len(order), dtype=bool)
    prev_inv[1:] = inv[:-1]
    simple = ~inv & same_prev & prev_inv  # completion right after an invoke of its process
    # a process is irregular if it has a completion not right after an invoke, or two invokes in a row
    bad = (~inv & ~simple) | (inv & same_prev & prev_inv)
    irregular = set(p[bad].tolist())
    comp = order[simple & ~np.isin(p, list(irregular))]
    k = np.flatnonzero(simple & ~np.isin(p, list(irregular)))
    pair[comp] = order[k - 1]
    pair[order[k - 1]] = comp
    if irregular:
        _pair_slow(ops, order[np.isin(p, list(irregular))], pair, name)
    fs = ops["f"].to_numpy()
    has = np.flatnonzero(pair >= 0)
    mismatch = has[fs[has] != fs[pair[has]]]
    if len(mismatch):
        r = int(mismatch[0])
        a, b = (r, int(pair[r])) if not is_inv[r] else (int(pair[r]), r)
        lines = ops["line"].to_numpy()
        raise HistoryError(f"{name}:{lines[a]}: completion of '{fs[a]}' matches an open invoke of "
                           f"'{fs[b]}' (line {lines[b]}) of the same process")
    return pair


def _pair_slow(ops: pd.DataFrame, rows: np.ndarray, pair: np.ndarray, name: str) -> None:
    """Stack matching for processes that do more than one thing at a time or complete orphans."""
    proc = ops["proc"].to_numpy()
    types = ops["type"].to_numpy()
    fs = ops["f"].to_numpy()
    lines = ops["line"].to_numpy()
    procs = ops["process"].to_numpy()
    stacks: dict[int, list[int]] = {}
    for r in rows.tolist():
        st = stacks.setdefault(int(proc[r]), [])
        if types[r] == "invoke":
            st.append(r)
        elif st:
            pair[r] = st.pop()
            pair[pair[r]] = r
        elif fs[r] in CLIENT_OPS:
            raise HistoryError(f"{name}:{lines[r]}: '{types[r]}' completion of '{fs[r]}' by process "
                               f"{procs[r]!r} has no open invoke")


def _send_fields(ops: pd.DataFrame, values: list[Any]) -> None:
    """Columns id, key, partition, offset of send operations (completions inherit the invoke's id)."""
    n = len(ops)
    ids = np.full(n, None, dtype=object)
    keys = np.full(n, None, dtype=object)
    parts = np.full(n, None, dtype=object)
    offs = np.full(n, -1, dtype=np.int64)
    producers = np.full(n, None, dtype=object)
    rows = np.flatnonzero(ops["f"].to_numpy() == "send")
    if len(rows):
        vs = [values[r] for r in rows.tolist()]
        ids[rows] = [v.id if v is not None else None for v in vs]
        keys[rows] = [v.key if v is not None else None for v in vs]
        parts[rows] = [v.partition if v is not None else None for v in vs]
        offs[rows] = [-1 if v is None or v.offset is None else v.offset for v in vs]
        if any(v is not None and v.producer is not None for v in vs):
            producers[rows] = [None if v is None or v.producer is None else str(v.producer) for v in vs]
        pair = ops["pair"].to_numpy()
        inv = ops["type"].to_numpy() == "invoke"
        comp = rows[~inv[rows] & (pair[rows] >= 0)]
        ids[comp] = ids[pair[comp]]  # the invoke names the message
        nokey = comp[pd.isna(keys[comp])]
        keys[nokey] = keys[pair[nokey]]
    ops["id"] = pd.Series(ids, dtype=object)
    ops["key"] = pd.Series(keys, dtype=object)
    ops["partition"] = pd.Series(parts, dtype=object)
    ops["offset"] = offs
    ops["producer"] = pd.Series(producers, dtype=object)
