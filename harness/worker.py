"""A worker process: one producer or consumer of a run, writing its own history shard.

Workers are separate OS processes so that `kill-producer` and `kill-consumer` are real SIGKILLs.
The harness starts one with `python -m harness.worker SPEC.json`; SIGTERM asks it to finish the
operation in hand and exit. Every operation is flushed to the shard as it completes, so a kill
loses at most the line being written. What the worker does is its workload's (`--workload`), with
the clients its target supplies for that workload (`Target.clients`).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import targets
import workloads
from harness.history import HistoryWriter, NullWriter
from plugin.workload import PROCESS_SPAN, ProcessLog, WorkerContext


def worker_spec(role: str, index: int, run_dir: Path, start_ns: int, target: str, profile: str,
                bootstrap: list[str], workload: str, settings: dict[str, Any], drain: bool = False,
                record: bool = True, slot: str = "", addresses: dict[str, str] | None = None,
                direct: dict[str, str] | None = None) -> dict[str, Any]:
    """What a worker needs: `bootstrap` lists the proxy addresses (host:port) of the nodes clients talk to,
    the only way in, and `addresses` every node's by name (a workload may read a node of a given role);
    `direct` every node's own address, past its proxy (for a reader that must not be slowed by the faults it
    measures: it never carries the workload's requests);
    `settings` are the workload's run options; `slot` names the place it fills (a replacement after a
    kill takes the same slot)."""
    return {"role": role, "index": index, "run_dir": str(run_dir), "start_ns": start_ns, "target": target,
            "profile": profile, "bootstrap": bootstrap, "workload": workload, "settings": settings, "drain": drain,
            "record": record, "slot": slot or f"{role}-{index}", "addresses": addresses or {},
            "direct": direct or {}}


def shard_path(run_dir: Path, role: str, index: int) -> Path:
    return Path(run_dir) / "shards" / f"{role}-{index}.jsonl"


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    stopping = {"flag": False}

    def on_term(signum: int, frame: Any) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness decides when workers stop
    target = targets.load(spec["target"])
    workload = workloads.load(spec["workload"])
    role, index = spec["role"], spec["index"]
    run_dir = Path(spec["run_dir"])
    path = shard_path(run_dir, role, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = HistoryWriter(path, start_ns=spec["start_ns"], batch=1) if spec.get("record", True) \
        else NullWriter(spec["start_ns"])
    t0 = time.monotonic()
    with writer as w:
        ctx = WorkerContext(role=role, index=index, target=target, profile=target.profiles[spec["profile"]],
                            bootstrap=spec["bootstrap"], run_dir=run_dir, slot=spec["slot"], drain=spec["drain"],
                            log=ProcessLog(w, (index + 1) * PROCESS_SPAN), writer=w,
                            settings=spec["settings"], stop=lambda: stopping["flag"],
                            clients=target.clients[workload.name], addresses=spec.get("addresses") or {},
                            direct=spec.get("direct") or {})
        stats = workload.run(role, ctx)
    stats["seconds"] = time.monotonic() - t0
    path.with_suffix(".stats.json").write_text(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
