"""Follow the workers' shards while a run goes on: counts for the progress line, the drain's quiet test and
whether a consumer fault's victim has started working."""

from __future__ import annotations

from pathlib import Path

import msgspec


class ShardTail:
    """Reads what the shards gained since the last call; counts sends, acks and deliveries."""

    def __init__(self, shard_dir: Path):
        self.dir = Path(shard_dir)
        self.offsets: dict[Path, int] = {}
        self.ops = 0
        self.sent = 0
        self.acked = 0
        self.unknown = 0
        self.delivered = 0
        self.delivered_by: dict[Path, int] = {}  # deliveries per shard

    def delivered_in(self, shard: Path) -> int:
        """Deliveries recorded so far in one worker's shard (0 before it exists)."""
        return self.delivered_by.get(Path(shard), 0)

    def poll(self) -> int:
        """Read new complete lines; return how many deliveries they held."""
        new_deliveries = 0
        for path in sorted(self.dir.glob("*.jsonl")):
            start = self.offsets.get(path, 0)
            try:
                with open(path, "rb") as fh:
                    fh.seek(start)
                    data = fh.read()
            except OSError:
                continue
            end = data.rfind(b"\n")
            if end < 0:
                continue
            self.offsets[path] = start + end + 1
            for raw in data[: end + 1].splitlines():
                try:
                    op = msgspec.json.decode(raw)
                except msgspec.DecodeError:
                    continue
                self.ops += 1
                f, t = op.get("f"), op.get("type")
                if f == "send":
                    if t == "invoke":
                        self.sent += 1
                    elif t == "ok":
                        self.acked += 1
                    elif t == "info":
                        self.unknown += 1
                elif f == "poll" and t == "ok":
                    n = len((op.get("value") or {}).get("messages") or ())
                    new_deliveries += n
                    self.delivered_by[path] = self.delivered_by.get(path, 0) + n
        self.delivered += new_deliveries
        return new_deliveries

