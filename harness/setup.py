"""What each target needs, and installing it: `onceproof setup [TARGET...]` and `onceproof doctor`.

Every target needs Toxiproxy, built once with `go install` into the cache
(`$ONCEPROOF_CACHE`, default `~/.cache/onceproof`) at a path pinned to its version; a target may also need
Debian packages, declared in `TARGETS`. Checking is cheap (a PATH lookup, one `dpkg-query`, one
`server -version`), so `install` on a machine that has everything returns at once.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

TOXIPROXY_VERSION = "2.12.0"
TOXIPROXY_PACKAGE = "github.com/Shopify/toxiproxy/v2/cmd/server"  # installs a binary named `server`
GO_MIN = (1, 23)  # toxiproxy 2.12.0's go.mod; Debian 12's golang-go is 1.19, too old
GO_PLACES = ("/usr/local/go/bin/go",)  # where Go is looked for besides PATH (and /usr/lib/go-*/bin/go)


@dataclass(frozen=True)
class Debian:
    """A Debian package a target needs, and the binary on PATH that shows it is installed."""

    package: str
    binary: str


# What each target needs besides Toxiproxy, which every target needs.
TARGETS: dict[str, tuple[Debian, ...]] = {
    "redis": (Debian("redis-server", "redis-server"), Debian("redis-tools", "redis-benchmark")),
}


@dataclass(frozen=True)
class Requirement:
    name: str
    present: bool
    detail: str  # the version when present, else why it is missing
    fix: str  # the command that installs it


class SetupError(RuntimeError):
    """Something a target needs is missing and could not be installed; the message says what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("ONCEPROOF_CACHE") or Path.home() / ".cache" / "onceproof")


def toxiproxy_path() -> Path:
    return cache_dir() / f"toxiproxy-{TOXIPROXY_VERSION}" / "server"


def toxiproxy_binary() -> Path:
    """The pinned Toxiproxy server binary; SetupError naming the fix when it is not built yet."""
    path = toxiproxy_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise SetupError(f"Toxiproxy {TOXIPROXY_VERSION} is not installed (expected {path}); "
                         "run `onceproof setup` to build it")
    return path


def _targets(targets: Iterable[str] | None) -> list[str]:
    names = list(TARGETS) if targets is None else list(dict.fromkeys(targets))
    unknown = [t for t in names if t not in TARGETS]
    if unknown:
        raise SetupError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    return names


def _debian_needs(targets: Iterable[str] | None) -> list[Debian]:
    return list(dict.fromkeys(d for t in _targets(targets) for d in TARGETS[t]))


def _run(cmd: Sequence[str], env: dict[str, str] | None = None,
         timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), env=env, timeout=timeout, capture_output=True, text=True, check=False)


def _deb_versions(packages: Sequence[str]) -> dict[str, str]:
    """Installed versions of the given Debian packages (those dpkg knows as installed)."""
    if not packages or not shutil.which("dpkg-query"):
        return {}
    r = _run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status} ${Version}\\n", *packages])
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "installed":
            out[parts[0]] = parts[2]
    return out


def _go_version(go: str) -> tuple[tuple[int, int], str] | None:
    try:
        r = _run([go, "version"], timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"go(\d+)\.(\d+)(\.\d+)?", r.stdout)
    return ((int(m[1]), int(m[2])), m[0]) if r.returncode == 0 and m else None


def find_go() -> tuple[str | None, str]:
    """(path of a Go new enough to build Toxiproxy or None, what was found, for messages)."""
    backports = sorted(map(str, Path("/usr/lib").glob("go-*/bin/go")))  # e.g. Debian's golang-1.2x-go
    candidates = [shutil.which("go"), *GO_PLACES, *backports]
    found = []
    for go in dict.fromkeys(c for c in candidates if c and os.access(c, os.X_OK)):
        v = _go_version(go)
        if v is None:
            continue
        if v[0] >= GO_MIN:
            return go, f"{v[1]} at {go}"
        found.append(f"{v[1]} at {go}")
    return None, ("found only " + ", ".join(found)) if found else "no Go found"


def _go_missing_message(found: str) -> str:
    need = "go{}.{}".format(*GO_MIN)
    return (f"building Toxiproxy {TOXIPROXY_VERSION} needs Go >= {need} ({found}). Debian 12's golang-go "
            f"is go1.19, too old: install {need} or newer from https://go.dev/dl/ into /usr/local/go, "
            "then run `onceproof setup`")


def _toxiproxy_requirement() -> Requirement:
    path = toxiproxy_path()
    if path.is_file() and os.access(path, os.X_OK):
        try:
            r = _run([str(path), "-version"], timeout=10)
            out = r.stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            out = str(e)
        if out.split()[-1:] == [TOXIPROXY_VERSION]:  # "toxiproxy-server version 2.12.0"
            return Requirement("toxiproxy", True, TOXIPROXY_VERSION, "onceproof setup")
        broken = f"{path} is broken ({out[:80] or 'no version'})"
        return Requirement("toxiproxy", False, broken, "onceproof setup")
    go, found = find_go()
    if go is None:
        need = "{}.{}".format(*GO_MIN)
        return Requirement("toxiproxy", False, f"not built; needs Go >= {need}, {found}",
                           f"install Go >= {need} from https://go.dev/dl/, then: onceproof setup")
    return Requirement("toxiproxy", False, f"not built ({path})", "onceproof setup")


def requirements(targets: Iterable[str] | None = None) -> list[Requirement]:
    """What the targets (default: all) need, present or not. Raises SetupError for an unknown target."""
    debs = _debian_needs(targets)
    versions = _deb_versions([d.package for d in debs])
    reqs = []
    for d in debs:
        where = shutil.which(d.binary)
        if where:
            detail = versions.get(d.package) or f"{where} (not from Debian {d.package})"
        else:
            detail = f"{d.binary} not on PATH"
        reqs.append(Requirement(d.binary, bool(where), detail, f"apt-get install -y {d.package}"))
    reqs.append(_toxiproxy_requirement())
    return reqs


def _apt_install(packages: list[str], progress: Callable[[str], object]) -> None:
    fix = "apt-get install -y " + " ".join(packages)
    if not shutil.which("apt-get"):
        raise SetupError(f"no apt-get on this machine: install {', '.join(packages)} yourself ({fix})")
    if os.geteuid() != 0:
        raise SetupError(f"installing Debian packages needs root: run `{fix}` or `onceproof setup` as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", *packages]
    progress(f"setup: installing Debian packages: {' '.join(packages)}")
    r = _run(install, env=env)
    if r.returncode != 0:  # most often a package the stale or absent package lists do not know yet
        progress("setup: apt-get install failed; running apt-get update once and retrying")
        u = _run(["apt-get", "update", "-q"], env=env)
        if u.returncode != 0:
            raise SetupError(f"apt-get update failed:\n{_tail(u.stderr or u.stdout)}")
        r = _run(install, env=env)
        if r.returncode != 0:
            raise SetupError(f"`{' '.join(install)}` failed:\n{_tail(r.stderr or r.stdout)}")


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def install_toxiproxy(progress: Callable[[str], object] = print) -> Path:
    """Build the pinned Toxiproxy server into the cache, unless it is there already; its path."""
    if _toxiproxy_requirement().present:
        return toxiproxy_path()
    go, found = find_go()
    if go is None:
        raise SetupError(_go_missing_message(found))
    cache = cache_dir()
    bindir = toxiproxy_path().parent
    env = {
        **os.environ,
        "GOBIN": str(bindir),
        "GOPATH": str(cache / "go"),
        "GOMODCACHE": str(cache / "go" / "pkg" / "mod"),
        "GOCACHE": str(cache / "go-build"),
        "GOFLAGS": "-mod=mod -modcacherw",  # -modcacherw: the module cache can be deleted with plain rm -rf
        "CGO_ENABLED": "0",  # a static binary; no C compiler needed
    }
    # `go install` leaves the version "git" (releases set it at link time), so set it like a release does:
    # `server -version` and the API's /version then say 2.12.0.
    ldflags = f"-ldflags=-X github.com/Shopify/toxiproxy/v2.Version={TOXIPROXY_VERSION}"
    cmd = [go, "install", ldflags, f"{TOXIPROXY_PACKAGE}@v{TOXIPROXY_VERSION}"]
    progress(f"setup: building Toxiproxy {TOXIPROXY_VERSION} with {found} into {bindir} (the first time "
             "downloads modules and takes a minute or two)")
    r = _run(cmd, env=env)
    if r.returncode != 0:
        raise SetupError(f"`GOBIN={bindir} {' '.join(cmd)}` failed:\n{_tail(r.stderr or r.stdout)}")
    req = _toxiproxy_requirement()
    if not req.present:
        raise SetupError(f"built Toxiproxy, but it does not work: {req.detail}")
    return toxiproxy_path()


def install(targets: Iterable[str] | None = None,
            progress: Callable[[str], object] = print) -> list[Requirement]:
    """Install whatever the targets (None: all; []: just what every target needs) are missing.

    Returns the requirements afterwards, all present; raises SetupError saying what failed and what to do.
    One process at a time per cache directory (a file lock), so concurrent setups do not build twice.
    """
    names = _targets(targets)
    reqs = requirements(names)
    if all(r.present for r in reqs):
        return reqs
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [d for d in _debian_needs(names) if not shutil.which(d.binary)]
        if missing:
            _apt_install(list(dict.fromkeys(d.package for d in missing)), progress)
        install_toxiproxy(progress)
    reqs = requirements(names)
    still = [r for r in reqs if not r.present]
    if still:
        raise SetupError("still missing after install: " + "; ".join(f"{r.name}: {r.detail}" for r in still))
    return reqs


def format_table(reqs: Sequence[Requirement]) -> str:
    rows = [("REQUIREMENT", "STATUS", "VERSION", "FIX")]
    rows += [(r.name, "present", r.detail, "") if r.present else (r.name, "MISSING", r.detail, r.fix)
             for r in reqs]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join([*(row[i].ljust(widths[i]) for i in range(3)), row[3]]).rstrip() for row in rows]
    return "\n".join(lines)


def _parse_targets(args: argparse.Namespace) -> list[str]:
    return _targets(args.targets or None)


def cmd_setup(args: argparse.Namespace) -> int:
    try:
        reqs = install(_parse_targets(args), progress=lambda m: print(m, file=sys.stderr))
    except SetupError as e:
        print(f"onceproof setup: error: {e}", file=sys.stderr)
        return 1
    print(format_table(reqs))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    try:
        reqs = requirements(_parse_targets(args))
    except SetupError as e:
        print(f"onceproof doctor: error: {e}", file=sys.stderr)
        return 2
    print(format_table(reqs))
    return 0 if all(r.present for r in reqs) else 1


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `setup` and `doctor` to the CLI's subparsers."""
    known = ", ".join(TARGETS)
    s = subparsers.add_parser("setup", help="install what the targets need (Debian packages, Toxiproxy)",
                              description=f"Install what the targets need; cached, so reruns are instant. "
                                          f"Targets: {known} (default: all).")
    s.add_argument("targets", nargs="*", metavar="TARGET", help=f"one of: {known} (default: all)")
    s.set_defaults(func=cmd_setup)
    d = subparsers.add_parser("doctor", help="show what the targets need, what is missing and how to fix it",
                              description="Exit 0 if everything is present, 1 if something is missing.")
    d.add_argument("targets", nargs="*", metavar="TARGET", help=f"one of: {known} (default: all)")
    d.set_defaults(func=cmd_doctor)
