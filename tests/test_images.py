"""Image names come from the compose files (no engine needed for these)."""

from __future__ import annotations

import targets
from harness.images import all_images, worker_packages
from plugin.imaging import compose_image, local_name


def test_the_compose_files_name_each_roles_public_image_and_its_variable():
    assert compose_image("redis", "redis.yml") == ("ONCEPROOF_REDIS_IMAGE", "redis:7.2")
    assert compose_image("kafka", "kafka.yml") == ("ONCEPROOF_KAFKA_IMAGE", "apache/kafka:4.4.0")
    assert compose_image("toxiproxy", "toxiproxy.yml") == ("ONCEPROOF_TOXIPROXY_IMAGE",
                                                           "ghcr.io/shopify/toxiproxy:2.12.0")
    assert compose_image("worker", None) == ("ONCEPROOF_WORKER_IMAGE", local_name("worker"))


def test_every_target_image_has_a_compose_file_naming_its_public_image():
    for name in targets.names():
        image = targets.load(name).image
        var, public = compose_image(image.role, image.compose)
        assert var == f"ONCEPROOF_{image.role.upper()}_IMAGE" and public


def test_images_cover_toxiproxy_every_target_and_the_worker_with_every_client_library():
    roles = [i.role for i in all_images()]
    assert roles[0] == "toxiproxy" and roles[-1] == "worker"
    assert set(roles[1:-1]) == {i.role for n in targets.names() if not (i := targets.load(n).image).local_only}
    assert {p for n in targets.names() for p in targets.load(n).needs.python} <= set(worker_packages())


def test_the_public_kafka_image_is_the_version_setup_pins():
    from targets.kafka.jars import KAFKA_VERSION

    assert compose_image("kafka", "kafka.yml")[1].endswith(":" + KAFKA_VERSION)
