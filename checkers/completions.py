"""Histories that record completions only (Kafka's VerifiableProducer logs each send's outcome, never the
send itself): each completion of a client operation with no open invoke of its process gets an invoke at its
own time, on the line before it. Zero-length operations: the checkers then see each outcome at the time it
was logged, which is all such a history knows. Used only when asked (`onceproof check --completions-only`),
since in a history that records invokes an orphan completion is a mistake worth an error."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from checkers.history import CLIENT_OPS, TYPES

PAIRED = (*CLIENT_OPS, "assign", "subscribe")  # the operations of a client that come in invoke/completion pairs
COMPLETIONS = TYPES[1:]


def with_invokes(lines: Iterable[str]) -> Iterator[str]:
    """The lines, each orphan completion of a client operation preceded by its invoke."""
    open_ops: dict[Any, int] = {}
    for line in lines:
        text = line.strip()
        if not text:
            continue
        try:
            op = json.loads(text)
        except ValueError:
            yield text  # the reader will name it
            continue
        if isinstance(op, dict) and op.get("f") in PAIRED and op.get("process") != "nemesis":
            p = json.dumps(op.get("process"))
            if op.get("type") == "invoke":
                open_ops[p] = open_ops.get(p, 0) + 1
            elif op.get("type") in COMPLETIONS:
                if open_ops.get(p, 0) > 0:
                    open_ops[p] -= 1
                else:
                    inv = {k: v for k, v in op.items() if k not in ("type", "index", "error")}
                    yield json.dumps({**inv, "type": "invoke"}, separators=(",", ":"))
        yield text
