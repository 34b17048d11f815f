"""harness/setup.py: requirements, install (with apt-get and go faked), `onceproof setup` and `doctor`."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from harness import setup
from plugin import needs

FAKE_SERVER = '#!/bin/sh\necho "toxiproxy-server version {}"\n'


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ONCEPROOF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_toxiproxy(version: str = needs.TOXIPROXY_VERSION) -> Path:
    path = needs.toxiproxy_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FAKE_SERVER.format(version))
    path.chmod(0o755)
    return path


def no_binaries(monkeypatch, go: str | None = None) -> None:
    monkeypatch.setattr(needs.shutil, "which", lambda name, *a, **k: None)
    monkeypatch.setattr(needs, "find_go", lambda: (go, f"go1.26.8 at {go}") if go else
                        (None, "found only go1.19 at /usr/bin/go"))


def all_binaries(monkeypatch) -> None:
    monkeypatch.setattr(needs.shutil, "which", lambda name, *a, **k: f"/usr/bin/{name}")
    monkeypatch.setattr(setup, "deb_versions", lambda pkgs: dict.fromkeys(pkgs, "5:7.0.15-1~deb12u10"))


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="onceproof")
    setup.add_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cache_dir_follows_the_environment(cache, monkeypatch):
    assert needs.toxiproxy_path() == cache / "toxiproxy-2.12.0" / "server"
    monkeypatch.delenv("ONCEPROOF_CACHE")
    assert setup.cache_dir() == Path.home() / ".cache" / "onceproof"


def test_requirements_when_everything_is_missing(monkeypatch):
    no_binaries(monkeypatch)
    reqs = setup.requirements(["redis"])
    assert [(r.name, r.present) for r in reqs] == [
        ("redis-server", False), ("redis-benchmark", False), ("toxiproxy", False)]
    assert reqs[0].fix == "apt-get install -y redis-server"
    assert reqs[1].fix == "apt-get install -y redis-tools"
    assert "not on PATH" in reqs[0].detail
    assert "go1.19" in reqs[2].detail and "1.23" in reqs[2].detail
    assert "go.dev" in reqs[2].fix and "onceproof setup" in reqs[2].fix


def test_requirements_when_everything_is_present(monkeypatch):
    all_binaries(monkeypatch)
    fake_toxiproxy()
    reqs = setup.requirements(["redis"])
    assert all(r.present for r in reqs)
    assert {r.name: r.detail for r in reqs} == {
        "redis-server": "5:7.0.15-1~deb12u10", "redis-benchmark": "5:7.0.15-1~deb12u10",
        "toxiproxy": "2.12.0"}


def test_toxiproxy_not_built_yet_or_broken(monkeypatch):
    no_binaries(monkeypatch, go="/usr/local/go/bin/go")
    (req,) = setup.requirements([])
    assert not req.present and req.fix == "onceproof setup" and "not built" in req.detail
    fake_toxiproxy("git")
    (req,) = setup.requirements([])
    assert not req.present and "broken" in req.detail and req.fix == "onceproof setup"


def test_binary_not_from_debian_still_counts(monkeypatch):
    all_binaries(monkeypatch)
    monkeypatch.setattr(setup, "deb_versions", lambda pkgs: {})
    reqs = setup.requirements(["redis"])
    assert reqs[0].present and "not from Debian redis-server" in reqs[0].detail


def test_unknown_target():
    with pytest.raises(setup.SetupError, match=r"unknown target.*known: .*redis"):
        setup.requirements(["nope"])
    assert run_cli("doctor", "nope") == 2
    assert run_cli("setup", "nope") == 1


def test_toxiproxy_binary_names_the_fix():
    with pytest.raises(needs.SetupError, match="onceproof setup"):
        needs.toxiproxy_binary()
    built = fake_toxiproxy()
    assert needs.toxiproxy_binary() == built


def test_doctor_names_the_fix_commands(monkeypatch, capsys):
    no_binaries(monkeypatch, go="/usr/local/go/bin/go")
    assert run_cli("doctor") == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("targets: ")
    assert out.splitlines()[1].split() == ["REQUIREMENT", "STATUS", "VERSION", "FIX"]
    assert "apt-get install -y redis-server" in out and "apt-get install -y redis-tools" in out
    assert "MISSING" in out and "onceproof setup" in out


def test_doctor_all_present(monkeypatch, capsys):
    all_binaries(monkeypatch)
    fake_toxiproxy()
    assert run_cli("doctor", "redis") == 0
    out = capsys.readouterr().out
    assert "MISSING" not in out and out.count("present") == 3 and "apt-get" not in out


class FakeRun:
    """Stands in for needs.run: records commands, answers apt-get and go install like they would."""

    def __init__(self, monkeypatch, apt_fails_first: bool = False) -> None:
        self.calls: list[tuple[list[str], dict | None]] = []
        self.installed = False
        self.apt_fails = apt_fails_first
        self.real = needs.run
        monkeypatch.setattr(needs, "run", self)
        monkeypatch.setattr(needs.shutil, "which", self.which)
        monkeypatch.setattr(needs.os, "geteuid", lambda: 0)

    def which(self, name, *a, **k):
        if name in ("redis-server", "redis-benchmark"):
            return f"/usr/bin/{name}" if self.installed else None
        return f"/usr/bin/{name}"

    def __call__(self, cmd, env=None, timeout=None):
        cmd = list(cmd)
        if cmd[1:] == ["-version"]:  # the (fake) toxiproxy binary: really run it
            return self.real(cmd, env, timeout)
        if cmd[0] == "dpkg-query":
            return subprocess.CompletedProcess(cmd, 0, "", "")
        self.calls.append((cmd, env))
        rc = 0
        if cmd[:2] == ["apt-get", "install"]:
            if self.apt_fails:
                self.apt_fails, rc = False, 100
            else:
                self.installed = True
        elif cmd[1:2] == ["install"]:  # go install
            fake_toxiproxy()
        err = "E: Unable to locate package redis-server" if rc else ""
        return subprocess.CompletedProcess(cmd, rc, "", err)


def test_install_with_everything_present_runs_nothing(monkeypatch):
    fake = FakeRun(monkeypatch)
    fake.installed = True
    fake_toxiproxy()
    reqs = setup.install(["redis"], progress=lambda m: pytest.fail(f"progress: {m}"))
    assert all(r.present for r in reqs) and fake.calls == []


def test_install_updates_apt_once_when_a_package_is_not_found(monkeypatch):
    fake = FakeRun(monkeypatch, apt_fails_first=True)
    fake_toxiproxy()
    said = []
    reqs = setup.install(["redis"], progress=said.append)
    assert all(r.present for r in reqs)
    cmds = [c for c, _ in fake.calls]
    assert [c[:2] for c in cmds] == [["apt-get", "install"], ["apt-get", "update"], ["apt-get", "install"]]
    assert cmds[0][-2:] == ["redis-server", "redis-tools"] and "-y" in cmds[0]
    assert all(env["DEBIAN_FRONTEND"] == "noninteractive" for _, env in fake.calls)
    assert any("redis-server redis-tools" in m for m in said)


def test_install_builds_toxiproxy_into_its_pinned_path(monkeypatch, cache):
    fake = FakeRun(monkeypatch)
    fake.installed = True
    go = "/usr/local/go/bin/go"
    monkeypatch.setattr(needs, "find_go", lambda: (go, f"go1.26.8 at {go}"))
    assert setup.install([], progress=lambda m: None)[0].present
    ((cmd, env),) = fake.calls
    assert cmd[0] == "/usr/local/go/bin/go" and cmd[1] == "install"
    assert cmd[-1] == "github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0"
    assert env["GOBIN"] == str(cache / "toxiproxy-2.12.0")
    assert env["GOPATH"].startswith(str(cache)) and env["GOMODCACHE"].startswith(str(cache))
    assert "-mod=mod" in env["GOFLAGS"].split()
    assert needs.toxiproxy_binary() == cache / "toxiproxy-2.12.0" / "server"


def test_install_with_too_old_go_says_so(monkeypatch):
    FakeRun(monkeypatch).installed = True
    monkeypatch.setattr(needs, "find_go", lambda: (None, "found only go1.19 at /usr/bin/go"))
    with pytest.raises(setup.SetupError, match=r"Go >= go1\.23.*go1\.19.*too old"):
        setup.install([])


def test_install_needs_root_for_apt(monkeypatch):
    FakeRun(monkeypatch)
    fake_toxiproxy()
    monkeypatch.setattr(needs.os, "geteuid", lambda: 1000)
    with pytest.raises(setup.SetupError, match=r"needs root.*apt-get install -y redis-server redis-tools"):
        setup.install(["redis"])


def test_setup_command_prints_the_table(monkeypatch, capsys):
    FakeRun(monkeypatch).installed = True
    fake_toxiproxy()
    assert run_cli("setup", "redis") == 0
    assert capsys.readouterr().out.count("present") == 3


def test_find_go_picks_a_new_enough_go(monkeypatch, tmp_path):
    old, new = tmp_path / "old" / "go", tmp_path / "new" / "go"
    for path, v in ((old, "1.19.8"), (new, "1.23.4")):
        path.parent.mkdir()
        path.write_text(f"#!/bin/sh\necho go version go{v} linux/amd64\n")
        path.chmod(0o755)
    monkeypatch.setattr(needs.shutil, "which", lambda name, *a, **k: str(old))
    monkeypatch.setattr(needs, "GO_PLACES", ())
    monkeypatch.setattr(needs.Path, "glob", lambda self, pattern: iter([new]))
    assert needs.find_go()[0] == str(new)
    monkeypatch.setattr(needs.Path, "glob", lambda self, pattern: iter([]))
    go, found = needs.find_go()
    assert go is None and "go1.19" in found


def test_doctor_lists_what_every_registered_target_needs(monkeypatch, capsys):
    all_binaries(monkeypatch)
    fake_toxiproxy()
    run_cli("doctor")  # exit 1: the fake cache has no Kafka jars
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "targets: " + ", ".join(setup.registry.names())
    reqs = {r.name: r for r in setup.requirements(["nats"])}
    assert reqs["nats-server"].fix == "apt-get install -y nats-server"
