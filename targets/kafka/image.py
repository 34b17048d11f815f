"""Kafka's node image for the docker runtime, laid out as the public `apache/kafka` image: the jars in
`/opt/kafka/libs` with `java` (this machine's Java 17) on PATH, so one generated command line runs in
either. Its last build step starts a one-node broker in a container of the image with
`-XX:ArchiveClassesAtExit` (as `onceproof setup kafka` does locally) and keeps the class-data archive it
writes, which about halves every later broker start in that image."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from plugin.imaging import PATH, Image, ImageBuild, ImageError, Layout, elf_files
from plugin.runtime import NodeSpec, Runtime
from plugin.target import NodeInfo
from targets.kafka import cluster
from targets.kafka.jars import kafka_libs

LIBS_IN_IMAGE = "/opt/kafka/libs"
CONTAINER_CLASSPATH = f"{LIBS_IN_IMAGE}/*"  # where the kafka image (ours or apache/kafka) keeps the jars
ROLE = "kafka"


def java_home() -> str:
    java = shutil.which("java")
    if java is None:
        raise ImageError("java is not installed (Java 17: apt-get install openjdk-17-jre-headless)")
    return str(Path(os.path.realpath(java)).parent.parent)


def layout() -> Layout:
    libs = kafka_libs()
    if not libs.is_dir() or not any(libs.glob("*.jar")):
        raise ImageError(f"no Kafka jars in {libs} (onceproof setup kafka)")
    home = java_home()
    keep = ("bin/java", "lib", "conf", "release")
    skip_names = {"src.zip", "ct.sym"}
    return Layout(
        same=[f"{home}/{k}" for k in keep],
        moved=[(str(libs), LIBS_IN_IMAGE)],
        links=[("/usr/local/bin/java", f"{home}/bin/java")],
        elf=[f"{home}/bin/java", *elf_files(f"{home}/lib")],
        skip=lambda p: os.path.basename(p) in skip_names,
        changes=[f"ENV PATH={PATH}", f"ENV JAVA_HOME={home}", "WORKDIR /opt/kafka"],
    )


def class_data_archive(build: ImageBuild, timeout: float = 240.0) -> None:
    """Start a one-node broker from the provisional image (the build's runtime runs it), create a topic, produce
    a record, stop it: the JVM writes the class-data archive, which goes into the final image. A failure only
    makes starts slower, so it is reported and the image is built without the archive."""
    build.progress("image onceproof/kafka: archiving the broker's classes (a one-node broker, about 30 s)")
    archive = build.work / "kafka.jsa"
    try:
        _run_archiving_broker(build.runtime, archive, build.work, timeout)
        shutil.copy2(archive, build.root / cluster.IMAGE_CDS_ARCHIVE.lstrip("/"))
    except Exception as e:
        build.progress(f"image onceproof/kafka: warning: no class-data archive ({type(e).__name__}: {e})")


def _run_archiving_broker(rt: Runtime, archive: Path, work: Path, timeout: float) -> None:
    try:
        placement = rt.place()
        ip = placement.host
        data = work / "kafka-cds"
        info = NodeInfo("kafka-cds", 9092, proxy_port=9092, data_dir=data,
                        extra_ports={"controller": 9093, "internal": 9094}, host=ip, bind="0.0.0.0", proxy_host=ip,
                        in_container=True)
        config = cluster.write_config(info, 1, [info], {})
        cluster.format_storage(info, config, cluster.cluster_id(), CONTAINER_CLASSPATH, cds=False,
                               run=lambda argv, t: rt.run_once(ROLE, argv, t))
        argv = cluster.node_argv(info, config, CONTAINER_CLASSPATH, cds=False)
        argv.insert(1, f"-XX:ArchiveClassesAtExit={archive}")
        node = rt.node(NodeSpec(name="kafka-cds", argv=argv, data_dir=data, log_path=cluster.log_path(info),
                                ready=lambda _n: cluster.ready(info), image=ROLE), placement)
        node.start().wait_ready(timeout)
        cluster.exercise([f"{ip}:9092"], topic_timeout=60)
        node.stop(timeout=60.0)
    finally:
        rt.teardown()
    if not (archive.is_file() and archive.stat().st_size > 0):
        raise ImageError("the broker wrote no class-data archive")


IMAGE = Image(ROLE, "kafka.yml", layout, class_data_archive)
