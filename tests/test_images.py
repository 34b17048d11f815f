"""Image names come from the compose files (no engine needed for these)."""

from __future__ import annotations

from harness.images import compose_image, local_name


def test_the_compose_files_name_each_roles_public_image_and_its_variable():
    assert compose_image("redis") == ("ONCEPROOF_REDIS_IMAGE", "redis:7.2")
    assert compose_image("kafka") == ("ONCEPROOF_KAFKA_IMAGE", "apache/kafka:4.4.0")
    assert compose_image("toxiproxy") == ("ONCEPROOF_TOXIPROXY_IMAGE", "ghcr.io/shopify/toxiproxy:2.12.0")
    assert compose_image("worker") == ("ONCEPROOF_WORKER_IMAGE", local_name("worker"))


def test_the_public_kafka_image_is_the_version_setup_pins():
    from harness.setup import KAFKA_VERSION

    assert compose_image("kafka")[1].endswith(":" + KAFKA_VERSION)
