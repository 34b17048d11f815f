"""Image layouts: what goes into a container image made from this machine's own files.

An image here is a root filesystem of only what one program needs: its files at the paths they have on
this machine, the shared libraries its ELF files load (the `ldd` closure), and a few files every
container wants (/etc/passwd, /tmp). `harness.images` packs a `Layout` into a tar and loads it with
`docker import`. Targets describe their node image with a `Layout`; this module imports nothing else of
onceproof.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugin.runtime import Runtime

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VERSION_TAG = "local-4"  # bump when an image's layout changes
COMPOSE = Path(__file__).resolve().parents[1] / "compose"
WORKER = "worker"  # the workers' image: no public one, always built here
HARNESS_COMPOSE: dict[str, str | None] = {"toxiproxy": "toxiproxy.yml", WORKER: None}  # the harness's own roles
_IMAGE_LINE = re.compile(r"^\s*image:\s*\$\{(ONCEPROOF_[A-Z0-9_]+_IMAGE):-([^}]+)\}\s*$", re.M)


class ImageError(RuntimeError):
    """An image could not be built (a file it needs is missing, docker refused it)."""


def local_name(role: str) -> str:
    """The image `onceproof images build` makes for `role`."""
    return f"onceproof/{role}:{VERSION_TAG}"


def env_var(role: str) -> str:
    return f"ONCEPROOF_{role.upper().replace('-', '_')}_IMAGE"


def compose_image(role: str, compose: str | None) -> tuple[str, str]:
    """(environment variable, public image) for `role`, from the first `image: ${VAR:-default}` line of its
    compose file in `compose/`: the compose files are where image names are decided, for the harness too.
    The worker has no public image (compose None): its default is the local build."""
    var = env_var(role)
    if compose is None:
        return var, local_name(role)
    path = COMPOSE / compose
    for found, default in _IMAGE_LINE.findall(path.read_text()):
        if found == var:
            return var, default.strip()
    raise ImageError(f"{path}: no `image: ${{{var}:-...}}` line")


@dataclass(frozen=True)
class ImageBuild:
    """What an image's last build step gets: `image` names a provisional image of the packed files, `root`
    is the packed root filesystem (files added there go into the final image), `work` a scratch directory, and
    `runtime` a container runtime in `work` that runs the image's role from the provisional image (the harness
    tears it down after the step)."""

    image: str
    root: Path
    work: Path
    progress: Callable[[str], object]
    runtime: Runtime


@dataclass(frozen=True)
class Image:
    """A container image for the docker runtime. `onceproof images build` packs `layout()` (this machine's
    files) into `onceproof/<role>:<tag>`, then runs `finish` if given (say, a class-data archive made by a
    node in a container of the image). `compose` names the compose file in `compose/` whose
    `image: ${ONCEPROOF_<ROLE>_IMAGE:-...}` line is the public default (None: no public image)."""

    role: str
    compose: str | None
    layout: Callable[[], Layout]
    finish: Callable[[ImageBuild], None] | None = None
    local_only: bool = False  # no image yet: the target runs as local processes only (the docker runtime refuses it)


@dataclass
class Layout:
    """What goes into one image: host paths copied to the same path, (host, image path) pairs copied
    elsewhere, symlinks, and the image's config (`docker import --change` lines)."""

    same: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (path in image, target)
    elf: list[str] = field(default_factory=list)  # files whose shared libraries come along
    changes: list[str] = field(default_factory=list)
    skip: Callable[[str], bool] = lambda p: False


def _ldd(paths: Iterable[str]) -> set[str]:
    """Every shared library the ELF files load, as absolute paths (plus the dynamic loader)."""
    out: set[str] = set()
    for p in paths:
        r = subprocess.run(["ldd", p], capture_output=True, text=True, check=False)
        if r.returncode != 0:  # a static binary or not ELF: nothing to add
            continue
        for line in r.stdout.splitlines():
            parts = line.split()
            if "=>" in parts:
                i = parts.index("=>")
                if i + 1 < len(parts) and parts[i + 1].startswith("/"):
                    out.add(parts[i + 1])
            elif parts and parts[0].startswith("/"):
                out.add(parts[0])
    return out


def elf_files(root: str) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if (f.endswith(".so") or ".so." in f) and not os.path.islink(p):
                found.append(p)
    return found


def _copy(src: str, dest: Path, skip: Callable[[str], bool]) -> None:
    """Copy a file or a tree, following symlinks (an image must not point outside itself)."""
    if os.path.isdir(src):
        for dirpath, dirs, files in os.walk(src, followlinks=True):
            dirs[:] = [d for d in dirs if not skip(os.path.join(dirpath, d))]
            rel = os.path.relpath(dirpath, src)
            target = dest / rel if rel != "." else dest
            target.mkdir(parents=True, exist_ok=True)
            for f in files:
                p = os.path.join(dirpath, f)
                if skip(p) or not os.path.exists(p):  # a dangling link
                    continue
                shutil.copy2(p, target / f)
    elif os.path.exists(src):
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
    else:
        raise ImageError(f"{src}: no such file (needed in the image)")


def _base(root: Path) -> None:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    for d in ("tmp", "root", "proc", "sys", "dev", "run", "var/tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "var/tmp", 0o1777)
    if os.path.exists("/etc/ld.so.cache"):
        shutil.copy2("/etc/ld.so.cache", root / "etc/ld.so.cache")


def pack(layout: Layout, root: Path) -> None:
    _base(root)
    for p in layout.same:
        _copy(p, root / p.lstrip("/"), layout.skip)
    for src, dest in layout.moved:
        _copy(src, root / dest.lstrip("/"), layout.skip)
    for lib in sorted(_ldd(layout.elf)):
        _copy(lib, root / lib.lstrip("/"), layout.skip)
        real = os.path.realpath(lib)
        if real != lib:
            _copy(real, root / real.lstrip("/"), layout.skip)
    for path, target in layout.links:
        link = root / path.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)


def find_binary(name: str, fix: str, places: Iterable[str] = ()) -> str:
    """The real path of program `name` (on PATH, else in `places`); ImageError naming `fix` if absent."""
    found = shutil.which(name) or next((p for p in places if os.access(p, os.X_OK)), None)
    if found is None:
        raise ImageError(f"{name} is not installed ({fix})")
    return os.path.realpath(found)
