"""Read a history (contract v1, JSON Lines) into columns for the checkers.

The reader lives beside the checkers and imports nothing from the rest of onceproof, so `onceproof
check` works on any history, including ones written by a user's own producers and consumers.

Speed matters (histories of millions of operations), and there the cost is in touching Python
objects, so the design keeps them out of every step but the first. One module per job, in the order
a file goes through them:

- `schedule`: the file is cut into chunks on line boundaries (tuning.py has the sizes); big files are
  decoded by several threads (mostly canonical lines: the C path runs without the GIL) or processes.
- `decode`: a chunk is read at once and taken in blocks; `canon` parses the lines written exactly as
  the harness writes them straight from the bytes (canon.c, built by `native`, or numpy); every other
  line goes to msgspec in pieces, decoded into the typed structs of `contract`, and a piece the typed
  decoders reject is decoded line by line by `validate`, which names the line and field.
- `extract`: decoded operations into compact columns; `ids` packs message ids into 64-bit words,
  hashes and deduplicates them with numpy; `codes` gives small values integer codes.
- `chunk`: the typed `Piece` and `Chunk` these steps hand each other, and the join of a chunk's
  pieces; `pairing` pairs invokes and completions, inside a chunk and (stack matching, or a history
  put in `index` order) across the whole history.
- `assemble`: the parent merges the chunks, in file order, into global codes (every message id of the
  history has ONE code in `History.id_table`) and joins the pairs across chunk boundaries.
- `model`: `History`, numpy columns for the checkers and pandas views built on first use (`keys`
  reads the keys from the file when a view asks for them; `scan` says whether the file holds some bytes).
- `read`: `read_history`, the entry point.
"""

from checkers.history.codes import stable_argsort
from checkers.history.contract import CLIENT_OPS, ENTRY_OPS, KNOWN_OPS, NEMESIS, OUTCOMES, TYPES, HistoryError
from checkers.history.ids import IdTable
from checkers.history.model import History, MessageCols, SendCols
from checkers.history.read import read_history, resolve_history_path

__all__ = [
    "CLIENT_OPS", "ENTRY_OPS", "KNOWN_OPS", "NEMESIS", "OUTCOMES", "TYPES", "History", "HistoryError", "IdTable",
    "MessageCols", "SendCols", "read_history", "resolve_history_path", "stable_argsort",
]
