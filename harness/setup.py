"""`onceproof setup [TARGET...]` and `onceproof doctor`: what the registered targets need, and installing it.

Each target declares its needs (`Target.needs`: Debian packages, files fetched into the cache, its
clients' Python modules); every target needs Toxiproxy too. The generic steps are `plugin.needs`; this
module loops over the targets the user names (default: all registered ones).
"""

from __future__ import annotations

import argparse
import fcntl
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import targets as registry
from plugin.needs import (
    Debian,
    Fetched,
    Progress,
    Requirement,
    SetupError,
    SetupTools,
    apt_install,
    cache_dir,
    deb_versions,
    debian_requirement,
    install_toxiproxy,
    toxiproxy_requirement,
    which,
)
from plugin.runtime import Runtime


def _targets(targets: Iterable[str] | None) -> list[str]:
    names = list(registry.names()) if targets is None else list(dict.fromkeys(targets))
    unknown = [t for t in names if t not in registry.names()]
    if unknown:
        raise SetupError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(registry.names())}")
    return names


def _debian_needs(targets: Iterable[str] | None) -> list[Debian]:
    return list(dict.fromkeys(d for t in _targets(targets) for d in registry.load(t).needs.debian))


def _fetched_needs(targets: Iterable[str] | None) -> list[Fetched]:
    return list(dict.fromkeys(f for t in _targets(targets) for f in registry.load(t).needs.fetched))


def _optional_needs(targets: Iterable[str] | None) -> list[Fetched]:
    return list(dict.fromkeys(f for t in _targets(targets) for f in registry.load(t).needs.optional))


def optional_requirements(targets: Iterable[str] | None = None) -> list[Requirement]:
    """What the targets could use for extra figures (native benchmark tools), present or not."""
    return [f.requirement() for f in _optional_needs(targets)]


def print_optional(targets: Iterable[str]) -> None:
    """A line per optional need: present with its version, or missing with why and the fix."""
    for r in optional_requirements(targets):
        print(f"optional: {r.name} {'present, ' + r.detail if r.present else 'missing (' + r.detail + '): ' + r.fix}")


def requirements(targets: Iterable[str] | None = None) -> list[Requirement]:
    """What the targets (default: all) need, present or not. Raises SetupError for an unknown target."""
    debs = _debian_needs(targets)
    versions = deb_versions([d.package for d in debs if not d.version_args])
    reqs = [debian_requirement(d, versions) for d in debs]
    reqs.append(toxiproxy_requirement())
    reqs += [f.requirement() for f in _fetched_needs(targets)]
    return reqs


def install_lossy_disks(progress: Progress) -> None:
    """Debian's fuse3, for the power-loss faults' lossy disks (no target needs them otherwise: a machine that
    cannot have them still runs everything else, and `doctor` says why)."""
    from harness import lossyfs

    if lossyfs.available()[0] or which(lossyfs.DEBIAN.binary):
        return
    try:
        apt_install([lossyfs.DEBIAN.package], progress)
    except SetupError as e:
        progress(f"setup: warning: no lossy disks (the power-loss faults): {e}")


def local_runtime(work: Path) -> Runtime:
    """What an install step that starts the system once runs it with: local processes in `work`, given a minute
    to stop (a JVM writing its class-data archive as it exits)."""
    from harness.runtime import LocalRuntime

    return LocalRuntime(work, grace=60.0)


def install(targets: Iterable[str] | None = None, progress: Progress = print) -> list[Requirement]:
    """Install whatever the targets (None: all; []: just what every target needs) are missing.

    Returns the requirements afterwards, all present; raises SetupError saying what failed and what to do.
    One process at a time per cache directory (a file lock), so concurrent setups do not build twice.
    """
    names = _targets(targets)
    reqs = requirements(names)
    if all(r.present for r in reqs + optional_requirements(names)):
        return reqs
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [d for d in _debian_needs(names) if not which(d.binary)]
        if missing:
            apt_install(list(dict.fromkeys(d.package for d in missing)), progress)
        install_toxiproxy(progress)
        install_lossy_disks(progress)
        tools = SetupTools(progress, local_runtime)
        for f in _fetched_needs(names):
            f.install(tools)
        for f in _optional_needs(names):
            if f.requirement().present:
                continue
            try:
                f.install(tools)
            except (SetupError, OSError) as e:  # optional: the run works without it, one figure is missing
                progress(f"setup: warning: {f.requirement().name} (optional) could not be installed: {e}")
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
    print_optional(_parse_targets(args))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    try:
        names = _parse_targets(args)
        reqs = requirements(names)
    except SetupError as e:
        print(f"onceproof doctor: error: {e}", file=sys.stderr)
        return 2
    print(f"targets: {', '.join(names)}")
    print(format_table(reqs))
    print_optional(names)
    print(_docker_status(names))
    from harness import lossyfs

    works, what = lossyfs.available()
    print(f"lossy disks for the power-loss faults (optional): {'works: ' if works else 'unavailable: '}{what}")
    from checkers.history import native

    print(f"history reader fast path (optional): {native.status()}")
    return 0 if all(r.present for r in reqs) else 1


def _docker_status(names: list[str]) -> str:
    """One line about the docker runtime (optional: it does not change doctor's exit status)."""
    from harness.images import images_for
    from harness.runtime import docker

    try:
        version = docker.client().version().get("Version", "?")
    except docker.DockerUnavailable as e:
        return f"docker runtime (optional): unavailable: {e}"
    return f"docker runtime (optional): engine {version}; images: " + ", ".join(
        f"{i.role} {docker.image_for(i.role, i.compose)}" for i in images_for(names))


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `setup` and `doctor` to the CLI's subparsers."""
    known = ", ".join(registry.names())
    s = subparsers.add_parser("setup", help="install what the targets need (Debian packages, Toxiproxy, "
                                            "fetched files)",
                              description=f"Install what the targets need; cached, so reruns are instant. "
                                          f"Targets: {known} (default: all).")
    s.add_argument("targets", nargs="*", metavar="TARGET", help=f"one of: {known} (default: all)")
    s.set_defaults(func=cmd_setup)
    d = subparsers.add_parser("doctor", help="show what the targets need, what is missing and how to fix it",
                              description="Exit 0 if everything is present, 1 if something is missing.")
    d.add_argument("targets", nargs="*", metavar="TARGET", help=f"one of: {known} (default: all)")
    d.set_defaults(func=cmd_doctor)
