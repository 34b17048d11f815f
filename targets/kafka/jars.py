"""Kafka's pinned jars in the cache: their versions, where they are, whether they are there, the classpath
and the class-data-sharing archive `onceproof setup kafka` builds. Fetching and building them is
`targets.kafka.install`."""

from __future__ import annotations

from pathlib import Path

from plugin.needs import SetupError, cache_dir

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


def kafka_dir() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}"


def kafka_libs() -> Path:
    return kafka_dir() / "libs"


def stamp() -> tuple[Path, str]:
    """The done-stamp and what it must hold: the pinned artifacts, so a changed pin fetches again."""
    return kafka_libs() / ".onceproof-done", "\n".join(":".join(a) for a in KAFKA_ARTIFACTS) + "\n"


def present() -> bool:
    path, want = stamp()
    try:
        return path.read_text() == want
    except OSError:
        return False


def kafka_classpath() -> str:
    """The Java classpath of the pinned Kafka broker and tools (`<libs>/*`); SetupError naming the fix
    when the jars are not fetched yet."""
    if not present():
        raise SetupError(f"the Kafka {KAFKA_VERSION} jars are not installed (expected {kafka_libs()}); "
                         "run `onceproof setup kafka` to fetch them")
    return f"{kafka_libs()}/*"


def kafka_cds_path() -> Path:
    """Where the class-data-sharing archive of a broker's startup classes goes (see `install_kafka`)."""
    return kafka_dir() / "kafka-cds.jsa"


def cds_failed() -> Path:
    return kafka_dir() / "kafka-cds.failed"  # why the archive could not be built; not tried again


def kafka_cds_archive() -> Path | None:
    """The class-data-sharing archive for the pinned jars, if it was built: brokers and tools started with
    `-XX:SharedArchiveFile=<it>` map the classes a broker loads at startup instead of loading them from
    the jars, which roughly halves a JVM's start on this 2-core machine."""
    path = kafka_cds_path()
    return path if present() and path.is_file() else None
