"""Which nats-server runs: Debian's 2.9.10 by default, or a pinned release built with `go install` into the cache
(`onceproof setup nats` builds them, as it builds natscli): 2.12.1, the version Jepsen analysed in 2025, and
2.15.3, the newest 2.x release when this was written. `--server-version` picks one; a run's config.json and
the comparison page say which ran.

What differs for onceproof: 2.9.10 syncs its stream files every two minutes with no option to sync sooner; from
2.10 on, `jetstream { sync_interval: ... }` sets it, and `always` fsyncs every write before the publish is
acknowledged.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

from plugin.needs import Fetched, Requirement, SetupError, SetupTools, cache_dir, go_install, run
from plugin.options import Option

DEBIAN = "2.9.10"
BUILT = ("2.12.1", "2.15.3")  # go install github.com/nats-io/nats-server/v2@v<version>
VERSIONS = (DEBIAN, *BUILT)
PACKAGE = "github.com/nats-io/nats-server/v2"

SERVER_VERSION = Option(
    "server_version", str, "", f"the nats-server to run: {DEBIAN} (Debian's, the default), "
    f"{' or '.join(BUILT)} (built with go install into the cache by `onceproof setup nats`)", "V", identifies=True)


def version_of(options: dict[str, object] | object) -> str:
    """The version a run's target options pick."""
    v = options.get("server_version") if isinstance(options, dict) else None
    return str(v) if v else DEBIAN


def check(version: str) -> None:
    if version not in VERSIONS:
        raise SetupError(f"--server-version {version!r}: onceproof runs nats-server {', '.join(VERSIONS)}")


def has_sync_interval(version: str) -> bool:
    """`jetstream { sync_interval }` exists from 2.10 on."""
    return tuple(int(x) for x in version.split(".")[:2]) >= (2, 10)


def built_path(version: str) -> Path:
    return cache_dir() / f"nats-server-{version}" / "nats-server"


def binary(version: str) -> str:
    """The server binary of `version` on this machine."""
    check(version)
    if version == DEBIAN:
        return shutil.which("nats-server") or "/usr/sbin/nats-server"  # Debian puts it in /usr/sbin
    path = built_path(version)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise SetupError(f"nats-server {version} is not built (expected {path}): run `onceproof setup nats`")
    return str(path)


def _requirement(version: str) -> Requirement:
    path = built_path(version)
    fix = "onceproof setup nats"
    if path.is_file() and os.access(path, os.X_OK):
        out = run([str(path), "--version"], timeout=10).stdout.strip()
        if out.endswith(f"v{version}"):
            return Requirement(f"nats-server {version}", True, version, fix)
        return Requirement(f"nats-server {version}", False, f"{path} says {out!r}", fix)
    return Requirement(f"nats-server {version}", False, f"not built ({path})", fix)


def _install(version: str, tools: SetupTools) -> Path:
    if not _requirement(version).present:
        go_install(f"{PACKAGE}@v{version}", built_path(version).parent, f"nats-server {version}", tools.progress)
    return built_path(version)


def _fetched(version: str) -> Fetched:
    return Fetched(functools.partial(_requirement, version), functools.partial(_install, version))


FETCHED = tuple(_fetched(v) for v in BUILT)
