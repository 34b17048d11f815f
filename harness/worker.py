"""A worker process: one producer or consumer of a run, writing its own history shard.

Workers are separate OS processes so that `kill-producer` and `kill-consumer` are real SIGKILLs.
The harness starts one with `python -m harness.worker SPEC.json`; SIGTERM asks it to finish the
operation in hand and exit. Every operation is flushed to the shard as it completes, so a kill
loses at most the line being written.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from harness.history import HistoryWriter, NullWriter
from workloads.queue import ProcessLog, QueueConfig, run_consumer, run_producer

PROCESS_ID_STRIDE = 1_000_000  # worker k's logical processes are k * STRIDE + 0, 1, 2, ...


def worker_spec(role: str, index: int, run_dir: Path, start_ns: int, target: str, profile: str,
                bootstrap: list[str], workload: dict[str, Any], drain: bool = False,
                record: bool = True, slot: str = "") -> dict[str, Any]:
    """What a worker needs: `bootstrap` lists the nodes' proxy addresses (host:port), the only way in;
    `slot` names the place it fills (a replacement after a kill takes the same slot)."""
    return {"role": role, "index": index, "run_dir": str(run_dir), "start_ns": start_ns, "target": target,
            "profile": profile, "bootstrap": bootstrap, "workload": workload, "drain": drain, "record": record,
            "slot": slot or f"{role}-{index}"}


def shard_path(run_dir: Path, role: str, index: int) -> Path:
    return Path(run_dir) / "shards" / f"{role}-{index}.jsonl"


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    stopping = {"flag": False}

    def on_term(signum: int, frame: Any) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness decides when workers stop
    target = importlib.import_module(f"targets.{spec['target']}")
    profile = target.PROFILES[spec["profile"]]
    cfg = QueueConfig(**spec["workload"])
    role, index = spec["role"], spec["index"]
    path = shard_path(Path(spec["run_dir"]), role, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = spec.get("record", True)
    writer = HistoryWriter(path, start_ns=spec["start_ns"], batch=1) if record else NullWriter(spec["start_ns"])
    t0 = time.monotonic()
    with writer as w:
        log = ProcessLog(w, (index + 1) * PROCESS_ID_STRIDE)
        if role == "producer":
            client = target.producer(spec["bootstrap"], profile)
            sent = run_producer(client, log, cfg, f"p{index}", int(profile.settings.get("producer_retries", 0)),
                                lambda: stopping["flag"])
            stats = {"attempted": sent, "acked": w.counts.get(("ok", "send"), 0)}
        else:
            name = f"c{index}"
            def on_assign(partitions: list) -> None:  # a rebalance: the log checker restarts its tracking
                log.invoke("assign", {"partitions": partitions})
                log.complete("ok", "assign", {"partitions": partitions})

            client = target.consumer(spec["bootstrap"], profile, name, work_s=cfg.work_ms / 1000,
                                     on_assign=on_assign, slot=spec.get("slot", name))
            run_consumer(client, log, cfg, name, lambda: stopping["flag"], drain=spec.get("drain", False))
            stats = {"polls": w.counts.get(("ok", "poll"), 0)}
        client.close()
    stats["seconds"] = time.monotonic() - t0
    path.with_suffix(".stats.json").write_text(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
