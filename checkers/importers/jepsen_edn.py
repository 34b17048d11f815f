"""Jepsen histories (`history.edn`, one operation map per line) of the queue workload (`:enqueue`,
`:dequeue`, `:drain`) and of the Kafka workload (`:send`, `:poll`, `:txn` operations made of micro-ops), read
with a real EDN reader (edn_format).

The mapping, and why:
- Jepsen's `:time` is nanoseconds since the test started, the contract's clock; `:process` integers stay,
  `:nemesis` becomes "nemesis". Jepsen already retires a process after `:info`, as the contract does.
- Queue: `:enqueue v` is a send of id `v`; `:dequeue` a poll (ok with value `v`: one delivery; `:fail`: the
  queue was empty, nothing delivered); `:drain` an ok poll of every value it returns.
- Kafka: values are unique per key only, so an id is `"<key>:<value>"` and the key is the partition. Each
  micro-op of an operation becomes its own contract operation of the same process, in order: the first
  starts at the Jepsen invoke, the others at its completion, all completed at its completion. A completed
  `[:send k [offset v]]` is a send with that partition and offset; `[:poll {k [[offset v] ...]}]` a poll whose
  messages carry them. An `:info` or `:fail` operation makes its sends `info` or `fail`, and its polls are not
  deliveries (a failed transaction's reads were aborted). `:assign` and `:subscribe` become `assign`.
- Nemesis operations become fault windows: an event opens a window named by its `:f` when none is open
  (unless it is a heal: stop, heal, resume, stop-partition) and closes the open window otherwise, so
  `:start`/`:stop` (partitions) and `:kill`/`:start` (crashes) both give one window per fault.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

NAME = "jepsen-edn"
DESCRIPTION = "Jepsen history.edn of the queue (enqueue/dequeue) or Kafka (send/poll micro-ops) workloads"
HEALS = {"stop", "heal", "resume", "stop-partition", "heal-partition", "unpause"}
QUEUE_FS = {"enqueue", "dequeue", "drain"}
KAFKA_FS = {"send", "poll", "txn"}


def _edn() -> Any:
    try:
        import edn_format
    except ImportError as e:  # a dependency of the project; say how to get it
        raise ValueError("the jepsen-edn importer needs the edn_format package (run harness/bootstrap.sh)") from e
    return edn_format


def _plain(x: Any) -> Any:
    """EDN values as plain Python: keywords to their names, maps to dicts, vectors and lists to lists."""
    edn = _edn()
    if isinstance(x, edn.Keyword):
        return x.name
    if isinstance(x, dict) or hasattr(x, "items"):
        return {_key(k): _plain(v) for k, v in x.items()}
    if isinstance(x, Sequence) and not isinstance(x, str):  # vectors (ImmutableList) and lists (tuples)
        return [_plain(v) for v in x]
    return x


def _key(k: Any) -> Any:
    edn = _edn()
    return k.name if isinstance(k, edn.Keyword) else k


def read_ops(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, operation map) for each line of a history.edn that holds one."""
    edn = _edn()
    with open(path) as f:
        for n, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith(";"):
                continue
            try:
                op = _plain(edn.loads(text))
            except Exception as e:  # the EDN reader raises its own types
                raise ValueError(f"{path}:{n}: not an EDN map: {e}") from e
            if not isinstance(op, dict) or "type" not in op or "f" not in op:
                raise ValueError(f"{path}:{n}: not a Jepsen operation (a map with :type and :f)")
            if not isinstance(op.get("time"), int):
                raise ValueError(f"{path}:{n}: field :time is missing or not an integer")
            yield n, op


def _mid(k: Any, v: Any) -> str:
    return f"{k}:{v}"


class Converter:
    def __init__(self) -> None:
        self.pending: dict[Any, dict[str, Any]] = {}  # process -> its open invoke
        self.window: str | None = None  # the open nemesis window's fault

    def op(self, op: dict[str, Any]) -> Iterator[dict[str, Any]]:
        f, typ, t, p = str(op["f"]), str(op["type"]), op["time"], op.get("process")
        if p == "nemesis":
            if typ != "invoke":  # each nemesis event once, at its completion
                yield from self.nemesis(f, t, op.get("value"))
            return
        if f in QUEUE_FS:
            yield from self.queue(op, f, typ, t, p)
        elif f in KAFKA_FS:
            yield from self.kafka(op, typ, t, p)
        elif f in ("assign", "subscribe"):
            if typ == "invoke":
                yield {"time": t, "process": p, "type": "invoke", "f": "assign", "value": op.get("value")}
            else:
                yield {"time": t, "process": p, "type": typ, "f": "assign", "value": {"partitions": op.get("value")}}

    def nemesis(self, f: str, t: int, value: Any) -> Iterator[dict[str, Any]]:
        if self.window is not None and f != self.window:
            yield {"time": t, "process": "nemesis", "type": "info", "f": "stop-fault",
                   "value": {"fault": self.window, "nodes": []}}
            self.window = None
        elif self.window is None and f not in HEALS:
            self.window = f
            yield {"time": t, "process": "nemesis", "type": "info", "f": "start-fault",
                   "value": {"fault": f, "nodes": [] if not isinstance(value, list) else [str(x) for x in value]}}

    def queue(self, op: dict[str, Any], f: str, typ: str, t: int, p: Any) -> Iterator[dict[str, Any]]:
        v = op.get("value")
        if f == "enqueue":
            yield {"time": t, "process": p, "type": typ, "f": "send", "value": {"id": str(v), "key": None}}
            return
        if typ == "invoke":
            yield {"time": t, "process": p, "type": "invoke", "f": "poll", "value": None}
            return
        if typ != "ok":
            yield {"time": t, "process": p, "type": typ, "f": "poll", "value": None}
            return
        values = ([] if v is None else [v]) if f == "dequeue" else list(v or [])
        yield {"time": t, "process": p, "type": "ok", "f": "poll",
               "value": {"messages": [{"id": str(x), "key": None} for x in values]}}

    def kafka(self, op: dict[str, Any], typ: str, t: int, p: Any) -> Iterator[dict[str, Any]]:
        mops = op.get("value") or []
        if typ == "invoke":
            self.pending[p] = op
            if mops:
                yield self._invoke(mops[0], t, p)
            return
        invoked = self.pending.pop(p, None)
        first_done = invoked is not None and bool(invoked.get("value"))
        for i, m in enumerate(mops):
            if i > 0 or not first_done:
                yield self._invoke(m, t, p)
            yield self._complete(m, typ, t, p)

    @staticmethod
    def _invoke(m: list[Any], t: int, p: Any) -> dict[str, Any]:
        if m[0] == "send":
            v = m[2][1] if isinstance(m[2], list) else m[2]
            return {"time": t, "process": p, "type": "invoke", "f": "send",
                    "value": {"id": _mid(m[1], v), "key": str(m[1])}}
        return {"time": t, "process": p, "type": "invoke", "f": "poll", "value": None}

    @staticmethod
    def _complete(m: list[Any], typ: str, t: int, p: Any) -> dict[str, Any]:
        if m[0] == "send":
            k = m[1]
            if typ == "ok" and isinstance(m[2], list):
                off, v = m[2]
                return {"time": t, "process": p, "type": "ok", "f": "send",
                        "value": {"id": _mid(k, v), "key": str(k), "partition": str(k), "offset": off}}
            v = m[2][1] if isinstance(m[2], list) else m[2]
            return {"time": t, "process": p, "type": typ, "f": "send",
                    "value": {"id": _mid(k, v), "key": str(k)} if typ == "ok" else None}
        if typ != "ok":
            return {"time": t, "process": p, "type": typ, "f": "poll", "value": None}
        polled = m[1] if len(m) > 1 and isinstance(m[1], dict) else {}
        msgs = [{"id": _mid(k, v), "key": str(k), "partition": str(k), "offset": off}
                for k, pairs in polled.items() for off, v in pairs]
        return {"time": t, "process": p, "type": "ok", "f": "poll", "value": {"messages": msgs}}


def convert(paths: list[Path]) -> Iterator[dict[str, Any]]:
    c = Converter()
    for path in paths:
        for _, op in read_ops(Path(path)):
            yield from c.op(op)
