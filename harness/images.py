"""`onceproof images build` and `images list`: the container images the docker runtime needs, made from this
machine's own files when no registry is reachable (as on our CI machines).

Each image is a root filesystem of only what one program needs (`plugin.imaging`), packed into a tar
and loaded with `docker import`: no base image, Dockerfile or registry. Small images matter: with the
`vfs` storage driver every container starts from a full copy of its image. Besides each target's node
image (`Target.image`), every run needs two of the harness's own: Toxiproxy at `/toxiproxy`, as in its
public image, and the workers' Python with the project's dependencies (the project's source is mounted
at `/opt/onceproof/src` by the runtime).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import targets
from plugin.imaging import (
    HARNESS_COMPOSE,
    PATH,
    WORKER,
    Image,
    ImageBuild,
    ImageError,
    Layout,
    elf_files,
    local_name,
    pack,
)
from plugin.needs import toxiproxy_binary

SRC_IN_IMAGE = "/opt/onceproof/src"
WORKER_BASE_PACKAGES = ("msgspec",)  # what harness.worker imports itself; targets add their clients'
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages",
               "__phello__", "pydoc_data", "distutils"}


def _toxiproxy() -> Layout:
    binary = str(toxiproxy_binary())
    return Layout(moved=[(binary, "/toxiproxy")], elf=[binary],
                  changes=[f"ENV PATH={PATH}", 'ENTRYPOINT ["/toxiproxy"]', 'CMD ["-host=0.0.0.0"]'])


def worker_packages() -> tuple[str, ...]:
    """The modules the worker image carries: msgspec and every registered target's client library."""
    names = list(WORKER_BASE_PACKAGES)
    for name in targets.names():
        names += [p for p in targets.load(name).needs.python if p not in names]
    return tuple(names)


def _worker() -> Layout:
    base = sys.base_prefix
    stdlib = sysconfig.get_paths()["stdlib"]
    exe = os.path.realpath(os.path.join(base, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}"))
    if not os.path.exists(exe):
        exe = os.path.realpath(sys._base_executable)  # type: ignore[attr-defined]
    purelib = sysconfig.get_paths()["purelib"]  # the venv's site-packages
    pkgs = []
    for name in worker_packages():
        for cand in (os.path.join(purelib, name), os.path.join(purelib, name + ".py")):
            if os.path.exists(cand):
                pkgs.append((cand, f"/opt/onceproof/site-packages/{os.path.basename(cand)}"))
                break
        else:
            raise ImageError(f"package {name} is not installed in {purelib}")
    dynload = os.path.join(stdlib, "lib-dynload")
    return Layout(
        same=[exe, stdlib],
        moved=pkgs,
        links=[("/usr/local/bin/python3", exe), ("/usr/local/bin/python", exe)],
        elf=[exe, *elf_files(dynload), *[f for src, _ in pkgs for f in elf_files(src)]],
        skip=lambda p: os.path.dirname(p) == stdlib and (os.path.basename(p) in STDLIB_SKIP
                                                         or os.path.basename(p).startswith("config-")),
        changes=[f"ENV PATH={PATH}", f"ENV PYTHONPATH={SRC_IN_IMAGE}:/opt/onceproof/site-packages",
                 "ENV PYTHONDONTWRITEBYTECODE=1", f"WORKDIR {SRC_IN_IMAGE}"],
    )


TOXIPROXY = Image("toxiproxy", HARNESS_COMPOSE["toxiproxy"], _toxiproxy)
WORKER_IMAGE = Image(WORKER, HARNESS_COMPOSE[WORKER], _worker)


def images_for(names: Iterable[str]) -> list[Image]:
    """The images runs of these targets need: Toxiproxy, each target's node image, the worker's."""
    return [TOXIPROXY, *(i for n in names if not (i := targets.load(n).image).local_only), WORKER_IMAGE]


def all_images() -> list[Image]:
    return images_for(targets.names())


def build(image: Image, progress: Callable[[str], object] = print, force: bool = False) -> str:
    """Build `onceproof/<role>:<tag>` from this machine's files; returns the image name."""
    from harness.runtime.docker import client

    name = local_name(image.role)
    c = client()
    if not force:
        try:
            c.images.get(name)
            progress(f"image {name}: present")
            return name
        except Exception:
            pass
    layout = image.layout()
    with tempfile.TemporaryDirectory(prefix=f"onceproof-image-{image.role}-") as tmp:
        root = Path(tmp) / "root"
        pack(layout, root)
        repo, tag = name.rsplit(":", 1)
        if image.finish is not None:  # first without what the last step makes, to make it in a container
            _import(c, root, Path(tmp) / "image.tar", repo, "build", layout.changes)
            work = Path(tmp) / "finish"
            work.mkdir()
            from harness.runtime.docker import DockerRuntime

            runtime = DockerRuntime(work, pinned={image.role: f"{repo}:build"})
            try:
                image.finish(ImageBuild(f"{repo}:build", root, work, progress, runtime))
            finally:
                runtime.teardown()
                with contextlib.suppress(Exception):
                    c.images.remove(f"{repo}:build")
        size = _import(c, root, Path(tmp) / "image.tar", repo, tag, layout.changes)
    progress(f"image {name}: built ({size / 1e6:.0f} MB)")
    return name


def _import(c: Any, root: Path, tar_path: Path, repo: str, tag: str, changes: list[str]) -> int:
    """Pack `root` into a tar and `docker import` it as repo:tag; returns the tar's size."""
    with tarfile.open(tar_path, "w") as tar:
        for entry in sorted(os.listdir(root)):
            tar.add(root / entry, arcname=entry)
    size = tar_path.stat().st_size
    try:
        c.api.import_image(src=str(tar_path), repository=repo, tag=tag, changes=changes)
        c.images.get(f"{repo}:{tag}")
    except Exception as e:
        raise ImageError(f"docker import of {repo}:{tag} failed: {e}") from e
    tar_path.unlink()
    return size


def build_for(names: Iterable[str], progress: Callable[[str], object] = print, force: bool = False) -> list[str]:
    return [build(i, progress, force) for i in images_for(names)]


def cmd_images(args: argparse.Namespace) -> int:
    from harness.runtime.docker import DockerUnavailable, image_for

    try:
        if args.images_cmd == "build":
            names = args.targets.split(",") if args.targets else targets.names()
            unknown = [t for t in names if t not in targets.names()]
            if unknown:
                print(f"onceproof images build: unknown target {', '.join(unknown)} (known: "
                      f"{', '.join(targets.names())})", file=sys.stderr)
                return 2
            build_for(names, force=args.force)
        else:
            for image in all_images():
                print(f"{image.role:10} {image_for(image.role, image.compose)}")
    except (ImageError, DockerUnavailable) as e:
        print(f"onceproof images: {e}", file=sys.stderr)
        return 2
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    known = ", ".join(targets.names())
    p = subparsers.add_parser("images", help="build the docker runtime's images from this machine's files")
    sub = p.add_subparsers(dest="images_cmd", required=True)
    b = sub.add_parser("build", help="build onceproof/<role> images (no registry needed)")
    b.add_argument("--targets", default="", help=f"comma-separated targets: {known} (default: all)")
    b.add_argument("--force", action="store_true", help="rebuild images that exist")
    sub.add_parser("list", help="which image each role uses (environment, local build or public)")
    p.set_defaults(func=cmd_images)
