"""`onceproof images build`: the container images the docker runtime needs, made from this machine's own
files when no registry is reachable (as on our CI machines).

An image here is a root filesystem of only what one program needs: its files at the paths they have on
this machine, the shared libraries its ELF files load (the `ldd` closure), and a few files every
container wants (/etc/passwd, /tmp). It is packed into a tar and loaded with `docker import`, so no
base image, Dockerfile or registry is involved. Small images matter: with the `vfs` storage driver
every container starts from a full copy of its image.

The layout follows the public images the compose files name, so one generated command line runs in
either: `redis-server` on PATH; Toxiproxy at `/toxiproxy`; Kafka's jars in `/opt/kafka/libs` with `java`
on PATH; the worker's Python with the project's dependencies, the project's source mounted at
`/opt/onceproof/src` by the harness.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERSION_TAG = "local-3"  # bump when an image's layout changes
SRC_IN_IMAGE = "/opt/onceproof/src"
KAFKA_LIBS_IN_IMAGE = "/opt/kafka/libs"
WORKER_PACKAGES = ("msgspec", "redis", "kafka")  # what harness.worker imports
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages",
               "__phello__", "pydoc_data", "distutils"}
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

COMPOSE = Path(__file__).resolve().parents[1] / "compose"
COMPOSE_FILES = {"redis": "redis.yml", "kafka": "kafka.yml", "toxiproxy": "toxiproxy.yml"}
_IMAGE_LINE = re.compile(r"^\s*image:\s*\$\{(ONCEPROOF_[A-Z]+_IMAGE):-([^}]+)\}\s*$", re.M)


def compose_image(role: str) -> tuple[str, str]:
    """(environment variable, public image) for `role`, from the first `image: ${VAR:-default}` line of its
    compose file: the compose files are where image names are decided, for the harness too."""
    if role == "worker":
        return "ONCEPROOF_WORKER_IMAGE", local_name("worker")  # no public worker image: build one
    path = COMPOSE / COMPOSE_FILES[role]
    for var, default in _IMAGE_LINE.findall(path.read_text()):
        if var == f"ONCEPROOF_{role.upper()}_IMAGE":
            return var, default.strip()
    raise ImageError(f"{path}: no `image: ${{ONCEPROOF_{role.upper()}_IMAGE:-...}}` line")


ROLES = ("redis", "kafka", "toxiproxy", "worker")


class ImageError(RuntimeError):
    """An image could not be built (a file it needs is missing, docker refused it)."""


def local_name(role: str) -> str:
    return f"onceproof/{role}:{VERSION_TAG}"


def image_for(role: str) -> str:
    """The image the docker runtime uses for `role`: $ONCEPROOF_<ROLE>_IMAGE if set, else the local build
    (`onceproof images build`) when it exists, else the public image."""
    env, public = compose_image(role)
    if os.environ.get(env):
        return os.environ[env]
    from harness.runtime.docker import client

    try:
        client().images.get(local_name(role))
        return local_name(role)
    except Exception:
        return public


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


def _elf_files(root: str) -> list[str]:
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


def _pack(layout: Layout, root: Path) -> None:
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


# --- the images -----------------------------------------------------------------------------------


def _toxiproxy() -> Layout:
    from harness.setup import toxiproxy_binary

    binary = str(toxiproxy_binary())
    return Layout(moved=[(binary, "/toxiproxy")], elf=[binary],
                  changes=[f"ENV PATH={PATH}", 'ENTRYPOINT ["/toxiproxy"]', 'CMD ["-host=0.0.0.0"]'])


def _redis() -> Layout:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ImageError("redis-server is not installed (onceproof setup redis)")
    binary = os.path.realpath(binary)
    return Layout(moved=[(binary, "/usr/local/bin/redis-server")], elf=[binary],
                  changes=[f"ENV PATH={PATH}", 'CMD ["redis-server"]'])


def _java_home() -> str:
    java = shutil.which("java")
    if java is None:
        raise ImageError("java is not installed (Java 17: apt-get install openjdk-17-jre-headless)")
    return str(Path(os.path.realpath(java)).parent.parent)


def _kafka() -> Layout:
    from harness.setup import kafka_libs

    libs = kafka_libs()
    if not libs.is_dir() or not any(libs.glob("*.jar")):
        raise ImageError(f"no Kafka jars in {libs} (onceproof setup kafka)")
    home = _java_home()
    keep = ("bin/java", "lib", "conf", "release")
    skip_names = {"src.zip", "ct.sym"}
    return Layout(
        same=[f"{home}/{k}" for k in keep],
        moved=[(str(libs), KAFKA_LIBS_IN_IMAGE)],
        links=[("/usr/local/bin/java", f"{home}/bin/java")],
        elf=[f"{home}/bin/java", *_elf_files(f"{home}/lib")],
        skip=lambda p: os.path.basename(p) in skip_names,
        changes=[f"ENV PATH={PATH}", f"ENV JAVA_HOME={home}", "WORKDIR /opt/kafka"],
    )


def _worker() -> Layout:
    base = sys.base_prefix
    stdlib = sysconfig.get_paths()["stdlib"]
    exe = os.path.realpath(os.path.join(base, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}"))
    if not os.path.exists(exe):
        exe = os.path.realpath(sys._base_executable)  # type: ignore[attr-defined]
    purelib = sysconfig.get_paths()["purelib"]  # the venv's site-packages
    pkgs = []
    for name in WORKER_PACKAGES:
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
        elf=[exe, *_elf_files(dynload), *[f for src, _ in pkgs for f in _elf_files(src)]],
        skip=lambda p: os.path.dirname(p) == stdlib and (os.path.basename(p) in STDLIB_SKIP
                                                         or os.path.basename(p).startswith("config-")),
        changes=[f"ENV PATH={PATH}", f"ENV PYTHONPATH={SRC_IN_IMAGE}:/opt/onceproof/site-packages",
                 "ENV PYTHONDONTWRITEBYTECODE=1", f"WORKDIR {SRC_IN_IMAGE}"],
    )


LAYOUTS: dict[str, Callable[[], Layout]] = {"toxiproxy": _toxiproxy, "redis": _redis, "kafka": _kafka,
                                            "worker": _worker}
NEEDS = {"redis": ("toxiproxy", "redis", "worker"), "kafka": ("toxiproxy", "kafka", "worker")}


KAFKA_CDS_IN_IMAGE = "/opt/kafka/onceproof.jsa"  # the broker's class-data archive (see targets/kafka/cluster.py)


def _kafka_cds(image: str, archive: Path, work: Path, timeout: float = 240.0) -> None:
    """Start a one-node broker from `image` in a container with -XX:ArchiveClassesAtExit, create a topic,
    produce a record, stop it: the JVM writes the class-data archive (as `onceproof setup kafka` does
    locally), which about halves every later broker start in that image."""
    from harness.runtime.docker import DockerRuntime
    from harness.runtime.local import NodeSpec
    from targets.base import NodeInfo
    from targets.kafka import CONTAINER_CLASSPATH, cluster

    rt = DockerRuntime(work, images={"kafka": image})
    try:
        ip = rt.allocate_ip()
        info = NodeInfo("kafka-cds", 9092, proxy_port=9092, data_dir=work / "kafka-cds",
                        extra_ports={"controller": 9093, "internal": 9094}, host=ip, bind="0.0.0.0", proxy_host=ip,
                        in_container=True)
        config = cluster.write_config(info, 1, [info], {})
        cluster.format_storage(info, config, cluster.cluster_id(), CONTAINER_CLASSPATH, cds=False,
                               run=lambda argv, t: rt.run_once("kafka", argv, t))
        argv = cluster.node_argv(info, config, CONTAINER_CLASSPATH, cds=False)
        argv.insert(1, f"-XX:ArchiveClassesAtExit={archive}")
        node = rt.node(NodeSpec(name="kafka-cds", argv=argv, data_dir=info.data_dir, log_path=cluster.log_path(info),
                                ready=lambda _n: cluster.ready(info)), role="kafka", ip=ip)
        node.start().wait_ready(timeout)
        cluster.exercise([f"{ip}:9092"], topic_timeout=60)
        node.stop(timeout=60.0)
    finally:
        rt.teardown()
    if not (archive.is_file() and archive.stat().st_size > 0):
        raise ImageError("the broker wrote no class-data archive")


def build(role: str, progress: Callable[[str], object] = print, force: bool = False) -> str:
    """Build `onceproof/<role>:<tag>` from this machine's files; returns the image name."""
    from harness.runtime.docker import client

    name = local_name(role)
    c = client()
    if not force:
        try:
            c.images.get(name)
            progress(f"image {name}: present")
            return name
        except Exception:
            pass
    layout = LAYOUTS[role]()
    with tempfile.TemporaryDirectory(prefix=f"onceproof-image-{role}-") as tmp:
        root = Path(tmp) / "root"
        _pack(layout, root)
        repo, tag = name.rsplit(":", 1)
        if role == "kafka":  # first without the archive, to make the archive in it
            _import(c, root, Path(tmp) / "image.tar", repo, "cds-build", layout.changes)
            progress("image onceproof/kafka: archiving the broker's classes (a one-node broker, about 30 s)")
            try:
                work = Path(tmp) / "cds"
                work.mkdir()
                _kafka_cds(f"{repo}:cds-build", work / "kafka.jsa", work)
                shutil.copy2(work / "kafka.jsa", root / KAFKA_CDS_IN_IMAGE.lstrip("/"))
            except Exception as e:  # the archive only makes starts faster
                progress(f"image onceproof/kafka: warning: no class-data archive ({type(e).__name__}: {e})")
            finally:
                with contextlib.suppress(Exception):
                    c.images.remove(f"{repo}:cds-build")
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


def build_for(targets: Iterable[str], progress: Callable[[str], object] = print, force: bool = False) -> list[str]:
    roles: list[str] = []
    for t in targets:
        for r in NEEDS.get(t, ("toxiproxy", "worker")):
            if r not in roles:
                roles.append(r)
    return [build(r, progress, force) for r in roles]


def cmd_images(args: argparse.Namespace) -> int:
    from harness.runtime.docker import DockerUnavailable

    try:
        if args.images_cmd == "build":
            targets = args.targets.split(",") if args.targets else list(NEEDS)
            unknown = [t for t in targets if t not in NEEDS]
            if unknown:
                print(f"onceproof images build: unknown target {', '.join(unknown)} (known: {', '.join(NEEDS)})",
                      file=sys.stderr)
                return 2
            build_for(targets, force=args.force)
        else:
            for role in ROLES:
                print(f"{role:10} {image_for(role)}")
    except (ImageError, DockerUnavailable) as e:
        print(f"onceproof images: {e}", file=sys.stderr)
        return 2
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("images", help="build the docker runtime's images from this machine's files")
    sub = p.add_subparsers(dest="images_cmd", required=True)
    b = sub.add_parser("build", help="build onceproof/<role> images (no registry needed)")
    b.add_argument("--targets", default="", help="comma-separated targets (default: all)")
    b.add_argument("--force", action="store_true", help="rebuild images that exist")
    sub.add_parser("list", help="which image each role uses (environment, local build or public)")
    p.set_defaults(func=cmd_images)
