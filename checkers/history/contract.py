"""The contract's words (contract v1, docs/history-v1.md) and the typed shapes a line is decoded into.

One home for the operation types, outcome codes and operation names the reader and the checkers share.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

TYPES = ("invoke", "ok", "fail", "info")
OUTCOMES = ("open", "ok", "fail", "info")  # a send's outcome code: the type code of its completion, 0 if none
CLIENT_OPS = ("send", "poll", "ack")
NEMESIS = "nemesis"


class HistoryError(Exception):
    """A history that does not follow the contract; the message names file, line and field."""


# --- what msgspec decodes a line into (the fast and the slow path both produce these) ---------------


class Message(msgspec.Struct, gc=False):
    id: str
    partition: int | str | None = None
    offset: int | None = -1  # -1 or None: no offset
    redelivered: bool = False
    # `key` is not decoded here: no checker reads keys, `History` reads them from the file on demand


class Value(msgspec.Struct, gc=False):
    id: str | None = None
    partition: int | str | None = None
    offset: int | None = -1
    messages: list[Message] | None = None
    counts: msgspec.Raw = None  # type: ignore[assignment]  # raw JSON (a dict from the slow path)
    fault: str | None = None
    nodes: Any = None
    producer: Any = None


# operation names the typed decoder knows (others are decoded by the next decoder, as strings)
KNOWN_OPS = ("send", "poll", "ack", "effects", "start-fault", "stop-fault", "assign", "subscribe", "final-read")
ENTRY_OPS = ("poll", "final-read")  # operations whose completions carry message entries


class Op(msgspec.Struct, gc=False):
    time: int
    process: int  # integers (as the harness writes them); a piece naming a process by string takes AnyOp
    type: Literal["invoke", "ok", "fail", "info"]
    f: Literal[KNOWN_OPS]  # type: ignore[valid-type]  # one shared string per name: no string per operation
    value: Value | None = None
    index: int | None = None


class AnyOp(msgspec.Struct, gc=False):
    time: int
    process: int | str
    type: Literal["invoke", "ok", "fail", "info"]
    f: str
    # other shapes are legal for operations the checkers do not know (Jepsen's assign takes a list)
    value: Value | list[Any] | str | int | float | bool | None = None
    index: int | None = None


OP_DECODERS = (msgspec.json.Decoder(Op), msgspec.json.Decoder(AnyOp))
EMPTY_VALUE = Value()

