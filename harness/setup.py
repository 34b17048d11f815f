"""What each target needs, and installing it: `onceproof setup [TARGET...]` and `onceproof doctor`.

Every target needs Toxiproxy, built once with `go install` into the cache
(`$ONCEPROOF_CACHE`, default `~/.cache/onceproof`) at a path pinned to its version; a target may also need
Debian packages, declared in `TARGETS`, and files fetched into the cache, declared in `FETCHED` (Kafka's
broker jars, fetched by Maven). Checking is cheap (a PATH lookup, one `dpkg-query`, one `server -version`,
a stamp file), so `install` on a machine that has everything returns at once.
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


# Kafka: the broker and its tools as Maven jars (no tarball). slf4j-api resolves to 1.7.36 under
# kafka_2.13 4.4.0 and kafka-server brings log4j-core 2.25.5, so the binding is log4j-slf4j-impl (the
# slf4j 1.7 binding) at that same log4j version; log4j-slf4j2-impl would bind nothing.
KAFKA_VERSION = "4.4.0"
KAFKA_LOG4J_VERSION = "2.25.5"
KAFKA_ARTIFACTS = (
    ("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),  # the broker (kafka.Kafka, kafka.tools.StorageTool)
    ("org.apache.kafka", "kafka-tools", KAFKA_VERSION),  # ProducerPerformance and the other tools
    ("org.apache.logging.log4j", "log4j-slf4j-impl", KAFKA_LOG4J_VERSION),  # the logging binding
)
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
JAVA_MIN = 17  # Kafka 4.x brokers need Java 17
MAVEN_TIMEOUT = 1200.0  # seconds for the whole fetch (about 55 MB of jars the first time)


@dataclass(frozen=True)
class Debian:
    """A Debian package a target needs, and the binary on PATH that shows it is installed.

    With `version_args`, the requirement's detail is the first line `binary *version_args` prints, and with
    `min_major` too, a binary whose first version number is smaller counts as missing."""

    package: str
    binary: str
    version_args: tuple[str, ...] = ()
    min_major: int | None = None


# What each target needs besides Toxiproxy, which every target needs.
TARGETS: dict[str, tuple[Debian, ...]] = {
    "redis": (Debian("redis-server", "redis-server"), Debian("redis-tools", "redis-benchmark")),
    "kafka": (Debian("openjdk-17-jre-headless", "java", ("-version",), JAVA_MIN),
              Debian("maven", "mvn", ("-v",))),
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


def _fetched_needs(targets: Iterable[str] | None) -> list[Fetched]:
    return list(dict.fromkeys(f for t in _targets(targets) for f in FETCHED.get(t, ())))


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


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _version_line(binary: str, args: Sequence[str]) -> str:
    """The first line `binary *args` prints (stdout or stderr: `java -version` uses stderr), or why not."""
    try:
        r = _run([binary, *args], timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`{binary} {' '.join(args)}` failed: {e}"
    out = _ANSI.sub("", (r.stdout or "") + "\n" + (r.stderr or "")).strip()
    return out.splitlines()[0].strip() if out else f"`{binary} {' '.join(args)}` printed nothing"


def _debian_requirement(d: Debian, versions: dict[str, str]) -> Requirement:
    fix = f"apt-get install -y {d.package}"
    where = shutil.which(d.binary)
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


def requirements(targets: Iterable[str] | None = None) -> list[Requirement]:
    """What the targets (default: all) need, present or not. Raises SetupError for an unknown target."""
    debs = _debian_needs(targets)
    versions = _deb_versions([d.package for d in debs if not d.version_args])
    reqs = [_debian_requirement(d, versions) for d in debs]
    reqs.append(_toxiproxy_requirement())
    reqs += [f.requirement() for f in _fetched_needs(targets)]
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
        for f in _fetched_needs(names):
            f.install(progress)
    reqs = requirements(names)
    still = [r for r in reqs if not r.present]
    if still:
        raise SetupError("still missing after install: " + "; ".join(f"{r.name}: {r.detail}" for r in still))
    return reqs


# --- Kafka's jars ----------------------------------------------------------------------------------


def kafka_dir() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}"


def kafka_libs() -> Path:
    return kafka_dir() / "libs"


def _kafka_stamp() -> tuple[Path, str]:
    """The done-stamp and what it must hold: the pinned artifacts, so a changed pin fetches again."""
    return kafka_libs() / ".onceproof-done", "\n".join(":".join(a) for a in KAFKA_ARTIFACTS) + "\n"


def _kafka_jars_present() -> bool:
    stamp, want = _kafka_stamp()
    try:
        return stamp.read_text() == want
    except OSError:
        return False


def kafka_classpath() -> str:
    """The Java classpath of the pinned Kafka broker and tools (`<libs>/*`); SetupError naming the fix
    when the jars are not fetched yet."""
    if not _kafka_jars_present():
        raise SetupError(f"the Kafka {KAFKA_VERSION} jars are not installed (expected {kafka_libs()}); "
                         "run `onceproof setup kafka` to fetch them")
    return f"{kafka_libs()}/*"


def kafka_cds_path() -> Path:
    """Where the class-data-sharing archive of a broker's startup classes goes (see `install_kafka`)."""
    return kafka_dir() / "kafka-cds.jsa"


def _kafka_cds_failed() -> Path:
    return kafka_dir() / "kafka-cds.failed"  # why the archive could not be built; not tried again


def kafka_cds_archive() -> Path | None:
    """The class-data-sharing archive for the pinned jars, if it was built: brokers and tools started with
    `-XX:SharedArchiveFile=<it>` map the classes a broker loads at startup instead of loading them from
    the jars, which roughly halves a JVM's start on this 2-core machine."""
    path = kafka_cds_path()
    return path if _kafka_jars_present() and path.is_file() else None


def _kafka_requirement() -> Requirement:
    name = f"kafka-{KAFKA_VERSION} jars"
    fix = "onceproof setup kafka"
    if _kafka_jars_present():
        jars = f"{KAFKA_VERSION} ({len(list(kafka_libs().glob('*.jar')))} jars in {kafka_libs()}"
        if kafka_cds_path().is_file():
            return Requirement(name, True, f"{jars}, with a CDS archive)", fix)
        failed = _kafka_cds_failed()
        if failed.is_file():  # the archive only speeds up starts: a broker runs without it
            return Requirement(name, True, f"{jars}; no CDS archive: see {failed})", fix)
        return Requirement(name, False, f"{jars}; the CDS archive is not built yet)", fix)
    why = "not fetched" if shutil.which("mvn") else "not fetched; needs Maven (apt-get install -y maven)"
    return Requirement(name, False, f"{why} ({kafka_libs()})", fix)


def kafka_pom() -> str:
    deps = "\n".join(f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
                     f"<version>{v}</version></dependency>" for g, a, v in KAFKA_ARTIFACTS)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by onceproof (harness/setup.py): the jars `onceproof setup kafka` fetches. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>onceproof</groupId>
  <artifactId>kafka-libs</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def install_kafka(progress: Callable[[str], object] = print) -> Path:
    """Fetch the pinned Kafka jars with Maven into `<cache>/kafka-<version>/libs` (Maven's own repository
    in `<cache>/m2`), unless the done-stamp says they are there, then build the class-data-sharing archive
    once (best effort: a failure is recorded and setup goes on); the libs directory."""
    libs = _fetch_kafka_jars(progress)
    if not kafka_cds_path().is_file() and not _kafka_cds_failed().is_file():
        _build_kafka_cds(progress)
    return libs


def _build_kafka_cds(progress: Callable[[str], object]) -> None:
    import tempfile

    from targets.kafka.cluster import build_cds_archive  # the broker's own configuration and start

    progress("setup: starting a one-node Kafka once to archive the classes it loads (about 20 s)")
    target = kafka_cds_path()
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    try:
        with tempfile.TemporaryDirectory(prefix="onceproof-kafka-cds-") as work:
            build_cds_archive(kafka_classpath(), tmp, Path(work))
        os.replace(tmp, target)
    except Exception as e:  # the archive only makes starts faster
        tmp.unlink(missing_ok=True)
        _kafka_cds_failed().write_text(f"{type(e).__name__}: {e}\n")
        progress(f"setup: warning: no CDS archive for Kafka (brokers start more slowly): {e}")


def _fetch_kafka_jars(progress: Callable[[str], object]) -> Path:
    libs = kafka_libs()
    if _kafka_jars_present():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SetupError("fetching the Kafka jars needs Maven: apt-get install -y maven, then "
                         "`onceproof setup kafka`")
    home = kafka_dir()
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(kafka_pom())
    shutil.rmtree(libs, ignore_errors=True)  # no jars of an earlier pin or a half-done fetch
    for stale in (kafka_cds_path(), _kafka_cds_failed()):  # an archive is only valid for its classpath
        stale.unlink(missing_ok=True)
    cmd = [mvn, "-q", "-B", "-f", str(home / "pom.xml"), f"-Dmaven.repo.local={cache_dir() / 'm2'}",
           f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
    progress(f"setup: fetching Kafka {KAFKA_VERSION} jars with Maven into {libs} (the first time downloads "
             "about 55 MB and takes a minute or two)")
    try:
        r = _run(cmd, timeout=MAVEN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise SetupError(f"`{' '.join(cmd)}` did not finish within {MAVEN_TIMEOUT:g}s") from e
    if r.returncode != 0:
        raise SetupError(f"`{' '.join(cmd)}` failed:\n{_tail(r.stdout + r.stderr, 25)}")
    wanted = [f"{a}-{v}.jar" for _, a, v in KAFKA_ARTIFACTS]
    absent = [j for j in wanted if not (libs / j).is_file()]
    if absent:
        raise SetupError(f"Maven finished but {libs} lacks {', '.join(absent)}")
    stamp, content = _kafka_stamp()
    stamp.write_text(content)
    return libs


@dataclass(frozen=True)
class Fetched:
    """Files a target needs in the cache besides Toxiproxy: how to check them and how to fetch them."""

    requirement: Callable[[], Requirement]
    install: Callable[[Callable[[str], object]], object]


# Fetched after the Debian packages (which may bring the tools that fetch them, like Maven).
FETCHED: dict[str, tuple[Fetched, ...]] = {
    "kafka": (Fetched(_kafka_requirement, install_kafka),),
}


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
    print(_docker_status())
    from checkers import native

    print(f"history reader fast path (optional): {native.status()}")
    return 0 if all(r.present for r in reqs) else 1


def _docker_status() -> str:
    """One line about the docker runtime (optional: it does not change doctor's exit status)."""
    from harness.runtime import docker

    try:
        version = docker.client().version().get("Version", "?")
    except docker.DockerUnavailable as e:
        return f"docker runtime (optional): unavailable: {e}"
    from harness.images import ROLES, image_for

    return f"docker runtime (optional): engine {version}; images: " + ", ".join(f"{r} {image_for(r)}" for r in ROLES)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `setup` and `doctor` to the CLI's subparsers."""
    known = ", ".join(TARGETS)
    s = subparsers.add_parser("setup", help="install what the targets need (Debian packages, Toxiproxy, "
                                            "Kafka's jars)",
                              description=f"Install what the targets need; cached, so reruns are instant. "
                                          f"Targets: {known} (default: all).")
    s.add_argument("targets", nargs="*", metavar="TARGET", help=f"one of: {known} (default: all)")
    s.set_defaults(func=cmd_setup)
    d = subparsers.add_parser("doctor", help="show what the targets need, what is missing and how to fix it",
                              description="Exit 0 if everything is present, 1 if something is missing.")
    d.add_argument("targets", nargs="*", metavar="TARGET", help=f"one of: {known} (default: all)")
    d.set_defaults(func=cmd_doctor)
