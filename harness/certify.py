"""One certification run from a validated configuration to its results: what `onceproof run`, a suite's
case and the pytest plugin all do, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from checkers.history import HistoryError, read_history
from checkers.suite import check_history
from harness.config import RunConfig

if TYPE_CHECKING:
    from harness.run import AfterRun


class RunFailed(Exception):
    """The harness could not run or record the test (not a verdict on the system); `run_dir` when it began."""

    def __init__(self, message: str, run_dir: Path | None = None):
        super().__init__(message)
        self.run_dir = run_dir


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: everything it started is stopped; `run_dir` keeps the history so far."""

    def __init__(self, run_dir: Path | None):
        super().__init__()
        self.run_dir = run_dir


@dataclass
class Certified:
    results: dict[str, Any]
    run_dir: Path
    paths: dict[str, Path]  # results, junit, report


def certify(cfg: RunConfig, out: TextIO | None = None, after: tuple[AfterRun, ...] = ()) -> Certified:
    """Run `cfg` (already validated), check its history, write the reports into the run directory. `after` are
    steps the run takes once the effects are read, while its nodes still run (`harness.run.AfterRun`).

    Never a verdict on what the harness failed to do: no message sent, a worker that died by itself or a
    drain cut off at its deadline make the verdict unknown, with the reason."""
    from harness.report import write_reports
    from harness.run import prepare
    from harness.runtime import cleanup

    cleanup.install_handlers()
    run = None
    try:
        run = prepare(cfg, out=out, after=after)
        history = run.execute()
    except KeyboardInterrupt:
        raise Interrupted(run.dir if run is not None else None) from None
    except Exception as e:
        raise RunFailed(f"{type(e).__name__}: {e}", run.dir if run is not None else None) from e
    finally:
        cleanup.uninstall_handlers()
    try:
        h = read_history(history)
    except HistoryError as e:
        raise RunFailed(f"the recorded history is unusable: {e}", run.dir) from e
    results = check_history(h, cfg.guarantee, claims_order=run.profile.claims_order)
    results["run"] = {"dir": str(run.dir), "config": cfg.resolved(run.profile, run.target),
                      "drain_incomplete": run.drain_incomplete,
                      "worker_failures": run.worker_failures, "unrecovered": run.unrecovered}
    for node, u in sorted(run.unrecovered.items()):  # a finding about the system, not the harness's failure
        results["warnings"].insert(0, f"finding: {node} did not start again after {u['fault']} (it stayed down for the "
                                      f"rest of the run); its log ends: {' | '.join(u['log'][-5:])}")
    c = results["delivery"]["counts"]
    if c["attempted"] == 0:
        results["valid"] = "unknown"
        results["reasons"].append("no message was sent: the producers did nothing (see workers/*.log)")
    if run.worker_failures:
        results["valid"] = "unknown"
        results["reasons"].append(
            "worker processes ended by themselves, so the history lacks what they should have done: "
            + "; ".join(f"{n} (exit {f['exit']}, workers/{n}.log)" for n, f in sorted(run.worker_failures.items())))
    if (run.drain_incomplete and results["valid"] is False and results["log"].get("valid") is not False
            and (c["lost"] or c["lost_effects"])):
        # an unfinished drain is not a loss
        results["valid"] = "unknown"
        results["reasons"].append(
            f"the drain stopped at its deadline ({run.drain_incomplete['deadline_s']:.0f}s) with "
            f"{run.drain_incomplete['backlog']} messages still unconsumed, so undelivered messages are not "
            "provably lost; rerun with a longer --drain-deadline")
    return Certified(results, run.dir, write_reports(results, run.dir))
