"""`onceproof check` and `onceproof run`: exit codes, files written, clear errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from tests.histories import Builder

ROOT = Path(__file__).resolve().parents[1]


def history(tmp_path: Path, lost: bool = False) -> Path:
    b = Builder()
    b.send(0, "a")
    b.send(0, "b")
    b.poll(1, ["a"] if lost else ["a", "b"])
    return b.write(tmp_path / "history.jsonl")


def test_valid_exits_0_and_writes_results_beside_the_history(tmp_path, capsys):
    history(tmp_path)
    assert main(["check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("verdict: VALID")
    r = json.loads((tmp_path / "results.json").read_text())
    assert r["valid"] is True and r["guarantee"] == "exactly-once"
    assert set(r["delivery"]["counts"]) >= {"attempted", "lost", "duplicated_effects"}
    assert (tmp_path / "report.html").exists() and (tmp_path / "junit.xml").exists()


def test_a_big_check_without_the_c_fast_path_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    import harness.cli as cli
    from checkers.history import native

    history(tmp_path)
    monkeypatch.setattr(cli, "SLOW_READ_NOTE_OPS", 1)
    monkeypatch.setattr(native, "_tried", True)
    monkeypatch.setattr(native, "_lib", None)
    monkeypatch.setattr(native, "_why", "no C compiler (cc, gcc or clang) on PATH")
    assert main(["check", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "read by numpy, not by the C fast path (no C compiler" in err and "apt-get install gcc" in err
    assert main(["check", str(tmp_path), "-q"]) == 0
    assert "note:" not in capsys.readouterr().err


def test_invalid_exits_1(tmp_path, capsys):
    p = history(tmp_path, lost=True)
    out = tmp_path / "out"
    assert main(["check", str(p), "--out", str(out)]) == 1
    assert "INVALID" in capsys.readouterr().out
    r = json.loads((out / "results.json").read_text())
    assert r["delivery"]["lost"] == ["b"]


def test_guarantee_changes_the_verdict(tmp_path):
    p = history(tmp_path, lost=True)
    assert main(["check", str(p), "--guarantee", "at-most-once"]) == 0
    assert main(["check", str(p), "--guarantee", "at-least-once"]) == 1


def test_empty_history_is_unknown_exit_2(tmp_path, capsys):
    (tmp_path / "history.jsonl").write_text("")
    assert main(["check", str(tmp_path)]) == 2
    assert "UNKNOWN" in capsys.readouterr().out
    assert json.loads((tmp_path / "results.json").read_text())["valid"] == "unknown"


def test_bad_line_exits_2_naming_file_and_line_and_writes_nothing(tmp_path, capsys):
    p = history(tmp_path)
    lines = p.read_text().splitlines()
    lines[2] = lines[2].replace('"type": "invoke"', '"type": "started"')
    p.write_text("\n".join(lines) + "\n")
    assert main(["check", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}:3:" in err and "unknown type" in err
    assert not (tmp_path / "results.json").exists()


def test_missing_path_exits_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope")]) == 2
    assert "no such history file" in capsys.readouterr().err


def test_unknown_guarantee_is_refused(tmp_path, capsys):
    history(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["check", str(tmp_path), "--guarantee", "twice"])
    assert e.value.code == 2
    assert "exactly-once" in capsys.readouterr().err


def test_the_bundled_example_history_checks_valid(tmp_path):
    example = ROOT / "harness" / "examples" / "example-history.jsonl"
    assert main(["check", str(example), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").exists()


def test_run_refuses_bad_numbers_before_starting(tmp_path, capsys):
    assert main(["run", "--time", "0", "--store", str(tmp_path)]) == 2
    assert "--time must be positive" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_module_entry_point_and_exit_code(tmp_path):
    history(tmp_path, lost=True)
    r = subprocess.run([sys.executable, "-m", "harness.cli", "check", str(tmp_path), "-q"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "lost 1 (0 in the middle)" in r.stdout


def test_version_names_the_package_and_the_contract(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("onceproof 0.") and "history contract history-v1" in out


def test_completions_only_gives_each_completion_its_invoke(tmp_path, capsys):
    lines = [{"time": 2, "process": 0, "type": "ok", "f": "send", "value": {"id": "a"}},
             {"time": 4, "process": 0, "type": "fail", "f": "send", "value": {"id": "b"}},
             {"time": 6, "process": 1, "type": "ok", "f": "poll", "value": {"messages": [{"id": "a"}]}}]
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["check", str(tmp_path)]) == 2
    assert "checked with --completions-only" in capsys.readouterr().err
    assert main(["check", str(tmp_path), "--completions-only"]) == 0
    r = json.loads((tmp_path / "results.json").read_text())
    assert r["completions_only"] is True and any("--completions-only" in w for w in r["warnings"])
    assert r["delivery"]["counts"]["acknowledged"] == 1 and r["delivery"]["counts"]["failed"] == 1
    made = (tmp_path / "history.with-invokes.jsonl").read_text().splitlines()
    assert [json.loads(x)["type"] for x in made] == ["invoke", "ok", "invoke", "fail", "invoke", "ok"]
