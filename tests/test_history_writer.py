"""The writer appends whole lines; shards merge by time into a history the reader accepts."""

from __future__ import annotations

import json

from checkers.history import read_history
from harness.history import HistoryWriter, merge_shards


def test_writer_appends_and_merge_orders_by_time(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with HistoryWriter(a) as w:
        w.write(0, "invoke", "send", {"id": "x"}, time_ns=10)
        w.write(0, "ok", "send", {"id": "x"}, time_ns=30)
    with HistoryWriter(b, batch=100) as w:
        w.write(1, "invoke", "poll", None, time_ns=20)
        w.write(1, "ok", "poll", {"messages": [{"id": "x"}]}, time_ns=40)
    with open(b, "ab") as fh:
        fh.write(b'{"time": 50, "proc')  # a writer killed mid-line
    out = tmp_path / "history.jsonl"
    assert merge_shards([a, b, tmp_path / "missing.jsonl"], out) == 4
    ops = [json.loads(line) for line in out.read_text().splitlines()]
    assert [o["time"] for o in ops] == [10, 20, 30, 40]
    assert [o["index"] for o in ops] == [0, 1, 2, 3]
    h = read_history(out)
    assert h.deliveries["id"].tolist() == ["x"]


def test_unflushed_batch_is_written_on_close(tmp_path):
    p = tmp_path / "s.jsonl"
    w = HistoryWriter(p, batch=10)
    w.write(0, "invoke", "send", {"id": "x"})
    assert p.read_bytes() == b""
    w.close()
    assert json.loads(p.read_text())["f"] == "send"
