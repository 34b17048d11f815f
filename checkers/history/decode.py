"""Decoding one chunk of the file: its bytes into a `chunk.Chunk`, or the first line that breaks the contract.

The chunk is read at once and taken in blocks (tuning.BLOCK_BYTES). The canonical lines of a block
are parsed straight from the bytes (canon.py). Every other line goes to msgspec in pieces of about
tuning.PIECE_BYTES (small enough for the objects of a piece to stay in the CPU's cache): decoded
straight into typed structs (`Op`, then the more permissive `AnyOp`); a piece the typed decoders
reject, or whose values the contract still rejects, is decoded again line by line by the slow path
(validate.py), which accepts each line or names exactly what is wrong with it. The pieces' columns
are then joined (chunk.join_pieces). All paths give the same columns.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import numpy as np

from checkers.history import canon, tuning
from checkers.history.chunk import Chunk, Failure, Piece, join_pieces
from checkers.history.contract import OP_DECODERS
from checkers.history.extract import Suspect, extract
from checkers.history.validate import check_line


def line_ranges(data: bytes | bytearray, n: int, size: int, pos: int = 0) -> Iterator[tuple[int, int]]:
    """Ranges of whole lines of about `size` bytes covering data[pos:n] (a longer line is a range)."""
    while pos < n:
        stop = pos + max(1, size)
        if stop >= n:
            stop = n
        else:
            cut = data.rfind(b"\n", pos, stop)
            if cut < 0:
                cut = data.find(b"\n", stop, n)
            stop = n if cut < 0 else cut + 1
        yield pos, stop
        pos = stop


def _plain(piece: bytes, newlines: np.ndarray) -> bool:
    """No blank or indented line: then line i of the piece is the i-th object the typed decoder finds
    (when there are as many objects as lines: two objects on one line are caught by the count)."""
    if piece[:1] in (b"\n", b" ", b"\t", b"\r"):
        return False
    after = np.frombuffer(piece, np.uint8)[newlines[newlines < len(piece) - 1] + 1]
    return not bool(((after == 10) | (after == 32) | (after == 9) | (after == 13)).any())


def _typed(piece: bytes, n_lines: int) -> Piece | None:
    """The piece's columns by the typed decoders, or None when the slow path must decide."""
    for decoder in OP_DECODERS:
        try:
            ops = decoder.decode_lines(piece)
        except msgspec.ValidationError:
            continue  # the next decoder accepts more shapes of values
        except msgspec.DecodeError:
            return None
        if len(ops) != n_lines:  # a line holding two objects would shift the numbering
            return None
        try:
            return extract(ops, piece)
        except (Suspect, OverflowError):
            return None
    return None


def decode_piece(piece: bytes, is_last: bool, nl: np.ndarray | None = None) -> Piece | Failure:
    """Decode a piece of whole lines: its columns, or the first error (line relative to the piece). `nl`: the
    positions of its newlines when the caller has them (the chunk found its blocks' already)."""
    if nl is None:
        nl = np.flatnonzero(np.frombuffer(piece, np.uint8) == 10)
    newlines = len(nl)
    out = None
    if _plain(piece, nl):
        out = _typed(piece, newlines + (1 if piece and not piece.endswith(b"\n") else 0))
    if out is not None:
        out.newlines = newlines
        return out
    # slow path: one line at a time, exact errors
    lines = piece.split(b"\n")
    ops, nums, warnings = [], [], []
    last_nonblank = max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            op = check_line(raw)
        except ValueError as e:
            if is_last and i == last_nonblank and str(e).startswith("not valid JSON"):
                warnings.append((i, "last line is truncated; ignored"))
                continue
            return Failure(line=i, message=str(e))
        ops.append(op)
        nums.append(i)
    try:
        out = extract(ops, piece)
    except Suspect:  # pragma: no cover - the slow path only yields values the extraction accepts
        raise AssertionError("the slow path let through a value the fast path rejects") from None
    out.newlines, out.lines, out.warnings = newlines, np.asarray(nums, dtype=np.int64), warnings
    return out


def decode_chunk(path: str, start: int, end: int, is_last: bool) -> Chunk | Failure:
    """Decode bytes [start, end) of the file (the last chunk when `is_last`): its columns, or the first
    error (line relative to the chunk)."""
    size = end - start
    buf = bytearray(size + canon.PAD)  # the chunk, then zeros: the canonical path's windows stay inside
    with open(path, "rb") as fh:
        fh.seek(start)
        got = fh.readinto(memoryview(buf)[:size])
    if got != size:  # pragma: no cover - the file shrank under us
        del buf[got:size]
        size = got
    c = canon.Canon(buf, size)
    data = memoryview(buf)[:size]
    pieces: list[tuple[int, Piece]] = []
    line0 = 0
    for b0, b1 in line_ranges(buf, size, tuning.BLOCK_BYTES):
        newlines = np.flatnonzero(c.a[b0:b1] == 10)
        newlines += b0
        for s0, s1, cols in canon.split_block(c, b0, b1, newlines):
            if cols is not None:
                pieces.append((line0, cols))
                line0 += cols.newlines
                continue
            for a, b in line_ranges(buf, s1, tuning.PIECE_BYTES, s0):
                piece, final = bytes(data[a:b]), b >= size
                at = np.searchsorted(newlines, (a, b)).tolist()
                part = decode_piece(piece, is_last and final, newlines[at[0]:at[1]] - a)
                if (isinstance(part, Failure) and is_last and not final
                        and part.message.startswith("not valid JSON") and not bytes(data[b:]).strip()):
                    # a bad last line followed by blank lines only is the file's truncated last line
                    part = decode_piece(piece, True)
                    if not isinstance(part, Failure):
                        pieces.append((line0, part))
                        line0 += part.newlines
                        return join_pieces(pieces, line0)
                if isinstance(part, Failure):
                    return Failure(line=line0 + part.line, message=part.message)
                pieces.append((line0, part))
                line0 += part.newlines
    return join_pieces(pieces, line0)
