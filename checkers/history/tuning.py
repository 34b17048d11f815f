"""The reader's sizes: how a file is cut up and when it is read in parallel.

Read as `tuning.NAME` at call time, so a test can make them small to exercise many chunks.
"""

CHUNK_BYTES = 32 << 20  # a file is cut into chunks of about this size on line boundaries (schedule.py)
PIECE_BYTES = 256 << 10  # other lines are decoded by msgspec in pieces of about this size (decode.py)
BLOCK_BYTES = 4 << 20  # the canonical path parses a chunk in blocks of about this size (decode.py)
PARALLEL_MIN_BYTES = 16 << 20  # smaller files are decoded in this process
PROBE_BYTES = 256 << 10  # how much of a big file `schedule.mostly_canonical` looks at, in each of three places
MAX_WORKERS = 8
