"""What a run needs installed, and the generic ways to check and install it.

Targets declare their needs with the types here (`Needs`: Debian packages, files fetched into the cache,
the Python packages their clients import); every target also needs Toxiproxy, built once with `go
install` into the cache (`$ONCEPROOF_CACHE`, default `~/.cache/onceproof`) at a path pinned to its
version. Checking is cheap (a PATH lookup, one `dpkg-query`, one `server -version`, a stamp file), so an
install on a machine that has everything returns at once. This module imports nothing else of onceproof:
targets import it, and `harness.setup` (the `setup` and `doctor` commands) loops over the targets.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugin.runtime import Runtime

TOXIPROXY_VERSION = "2.12.0"
TOXIPROXY_PACKAGE = "github.com/Shopify/toxiproxy/v2/cmd/server"  # installs a binary named `server`
GO_MIN = (1, 23)  # toxiproxy 2.12.0's go.mod; Debian 12's golang-go is 1.19, too old
GO_PLACES = ("/usr/local/go/bin/go",)  # where Go is looked for besides PATH (and /usr/lib/go-*/bin/go)

SBIN = "/usr/local/sbin:/usr/sbin:/sbin"  # not on every user's PATH
Progress = Callable[[str], object]


@dataclass(frozen=True)
class Debian:
    """A Debian package a target needs, and the binary on PATH that shows it is installed.

    With `version_args`, the requirement's detail is the first line `binary *version_args` prints, and with
    `min_major` too, a binary whose first version number is smaller counts as missing."""

    package: str
    binary: str
    version_args: tuple[str, ...] = ()
    min_major: int | None = None


@dataclass(frozen=True)
class Requirement:
    name: str
    present: bool
    detail: str  # the version when present, else why it is missing
    fix: str  # the command that installs it


@dataclass(frozen=True)
class SetupTools:
    """What an install step is handed: `progress` for what it says, and `runtime(work_dir)`, a runtime of local
    processes in a scratch directory, for a step that must start the system once (Kafka's class-data archive);
    the step tears it down."""

    progress: Progress
    runtime: Callable[[Path], Runtime]


@dataclass(frozen=True)
class Fetched:
    """Files a target needs in the cache (pinned versions, checked by a stamp or checksum): how to check
    them and how to fetch them. Fetched after the Debian packages, which may bring the tools that fetch
    them (like Maven)."""

    requirement: Callable[[], Requirement]
    install: Callable[[SetupTools], object]


@dataclass(frozen=True)
class Needs:
    """Everything a target needs on the machine besides Toxiproxy: `python` names the modules its clients
    import (they are onceproof's own dependencies; the worker image carries them)."""

    debian: tuple[Debian, ...] = ()
    fetched: tuple[Fetched, ...] = ()
    python: tuple[str, ...] = field(default=())
    # for extra figures only (a native benchmark tool): `setup` installs them and warns when it cannot; runs
    # never wait for them, and a missing one only leaves its figure out
    optional: tuple[Fetched, ...] = ()


class SetupError(RuntimeError):
    """Something a target needs is missing and could not be installed; the message says what to do."""


def which(binary: str) -> str | None:
    """A program on PATH, or in the sbin directories some packages install to (not on every user's PATH)."""
    return shutil.which(binary) or shutil.which(binary, path=SBIN)


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


def run(cmd: Sequence[str], env: dict[str, str] | None = None,
         timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), env=env, timeout=timeout, capture_output=True, text=True, check=False)


def deb_versions(packages: Sequence[str]) -> dict[str, str]:
    """Installed versions of the given Debian packages (those dpkg knows as installed)."""
    if not packages or not shutil.which("dpkg-query"):
        return {}
    r = run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status} ${Version}\\n", *packages])
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "installed":
            out[parts[0]] = parts[2]
    return out


def _go_version(go: str) -> tuple[tuple[int, int], str] | None:
    try:
        r = run([go, "version"], timeout=30)
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


def toxiproxy_requirement() -> Requirement:
    path = toxiproxy_path()
    if path.is_file() and os.access(path, os.X_OK):
        try:
            r = run([str(path), "-version"], timeout=10)
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


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _version_line(binary: str, args: Sequence[str]) -> str:
    """The first line `binary *args` prints (stdout or stderr: `java -version` uses stderr), or why not."""
    try:
        r = run([binary, *args], timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`{binary} {' '.join(args)}` failed: {e}"
    out = _ANSI.sub("", (r.stdout or "") + "\n" + (r.stderr or "")).strip()
    return out.splitlines()[0].strip() if out else f"`{binary} {' '.join(args)}` printed nothing"


def debian_requirement(d: Debian, versions: dict[str, str]) -> Requirement:
    fix = f"apt-get install -y {d.package}"
    where = which(d.binary)
    if not where:
        return Requirement(d.binary, False, f"{d.binary} not on PATH", fix)
    if not d.version_args:
        return Requirement(d.binary, True, versions.get(d.package) or f"{where} (not from Debian {d.package})", fix)
    line = _version_line(where, d.version_args)
    if d.min_major is not None:
        m = re.search(r"(\d+)(?:\.\d+)*", line)
        if not m or int(m[1]) < d.min_major:
            return Requirement(d.binary, False, f"{line} at {where}: needs {d.min_major} or newer", fix)
    return Requirement(d.binary, True, line, fix)


def apt_install(packages: list[str], progress: Progress) -> None:
    fix = "apt-get install -y " + " ".join(packages)
    if not shutil.which("apt-get"):
        raise SetupError(f"no apt-get on this machine: install {', '.join(packages)} yourself ({fix})")
    if os.geteuid() != 0:
        raise SetupError(f"installing Debian packages needs root: run `{fix}` or `onceproof setup` as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", *packages]
    progress(f"setup: installing Debian packages: {' '.join(packages)}")
    r = run(install, env=env)
    if r.returncode != 0:  # most often a package the stale or absent package lists do not know yet
        progress("setup: apt-get install failed; running apt-get update once and retrying")
        u = run(["apt-get", "update", "-q"], env=env)
        if u.returncode != 0:
            raise SetupError(f"apt-get update failed:\n{tail(u.stderr or u.stdout)}")
        r = run(install, env=env)
        if r.returncode != 0:
            raise SetupError(f"`{' '.join(install)}` failed:\n{tail(r.stderr or r.stdout)}")


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def go_install(package: str, bindir: Path, what: str, progress: Progress, *flags: str) -> None:
    """`go install package@version` into `bindir`, with its modules and build cache in onceproof's cache (a
    static binary: no C compiler needed)."""
    go, found = find_go()
    if go is None:
        raise SetupError(_go_missing_message(found))
    cache = cache_dir()
    env = {
        **os.environ,
        "GOBIN": str(bindir),
        "GOPATH": str(cache / "go"),
        "GOMODCACHE": str(cache / "go" / "pkg" / "mod"),
        "GOCACHE": str(cache / "go-build"),
        "GOFLAGS": "-mod=mod -modcacherw",  # -modcacherw: the module cache can be deleted with plain rm -rf
        "CGO_ENABLED": "0",
    }
    cmd = [go, "install", *flags, package]
    progress(f"setup: building {what} with {found} into {bindir} (the first time downloads modules and takes a "
             "minute or two)")
    r = run(cmd, env=env)
    if r.returncode != 0:
        raise SetupError(f"`GOBIN={bindir} {' '.join(cmd)}` failed:\n{tail(r.stderr or r.stdout)}")


def install_toxiproxy(progress: Progress = print) -> Path:
    """Build the pinned Toxiproxy server into the cache, unless it is there already; its path."""
    if toxiproxy_requirement().present:
        return toxiproxy_path()
    # `go install` leaves the version "git" (releases set it at link time), so set it like a release does:
    # `server -version` and the API's /version then say 2.12.0.
    ldflags = f"-ldflags=-X github.com/Shopify/toxiproxy/v2.Version={TOXIPROXY_VERSION}"
    go_install(f"{TOXIPROXY_PACKAGE}@v{TOXIPROXY_VERSION}", toxiproxy_path().parent, f"Toxiproxy {TOXIPROXY_VERSION}",
               progress, ldflags)
    req = toxiproxy_requirement()
    if not req.present:
        raise SetupError(f"built Toxiproxy, but it does not work: {req.detail}")
    return toxiproxy_path()


