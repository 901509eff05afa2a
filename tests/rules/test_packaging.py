"""What a user installing from PyPI gets: metadata, extras, files, and a README that works there."""

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def metadata():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return config


def lines(value):
    return [line.strip() for line in value.splitlines() if line.strip() and line[0] != "#"]


def requirements(value):
    return [line for line in lines(value) if not line.startswith("#")]


def test_license_is_mit_with_its_file_shipped():
    config = metadata()

    assert config["metadata"]["license_expression"] == "MIT"
    assert config["metadata"]["license_files"] == "LICENSE"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_django_range_has_an_upper_bound_and_classifiers_name_each_tested_series():
    config = metadata()
    [django] = [r for r in requirements(config["options"]["install_requires"]) if "Django" in r]
    classifiers = lines(config["metadata"]["classifiers"])

    assert django == "Django>=5.2,<6.1"
    assert {"Framework :: Django :: 5.2", "Framework :: Django :: 6.0"} <= set(classifiers)
    assert "Development Status :: 4 - Beta" in classifiers


def test_redis_extra_brings_celerys_own_redis_transport_requirements():
    extras = metadata()["options.extras_require"]

    assert "celery[redis]>=5.4" in requirements(extras["redis"])
    assert "amqp>=5.2" in requirements(extras["rabbitmq"])
    assert {"sphinx>=7.2", "furo>=2024.1"} <= set(requirements(extras["test"]))


def test_project_urls_and_the_readme_image_name_the_same_repository():
    config = metadata()
    source = dict(line.split(" = ", 1) for line in lines(config["metadata"]["project_urls"]))[
        "Source"
    ]
    repository = source.removeprefix("https://github.com/")
    readme = (ROOT / "README.rst").read_text(encoding="utf-8")

    images = re.findall(r"^\.\. image:: (\S+)", readme, re.MULTILINE)

    assert images, "the README shows the admin"
    for image in images:
        assert image.startswith(f"https://raw.githubusercontent.com/{repository}/"), image
        assert (ROOT / image.split("/main/", 1)[1]).exists(), image


def test_the_readme_starts_with_the_two_commands_a_newcomer_runs():
    readme = (ROOT / "README.rst").read_text(encoding="utf-8")
    commands = re.findall(r"^    (make \w+)$", readme, re.MULTILINE)

    assert commands[:2] == ["make demo", "make test"]


def test_the_sdist_ships_no_tests_and_the_docs_build_output_stays_out():
    manifest = (ROOT / "MANIFEST.in").read_text().splitlines()

    assert {"prune tests", "prune docs/_build", "prune docs/_generated"} <= set(manifest)
    assert "include LICENSE CHANGELOG.rst README.rst SECURITY.rst" in manifest


def test_celerys_redis_transport_loads_with_what_the_extras_install():
    # A worker on a redis:// broker imports this at start; with only ``redis`` installed it
    # failed on kombu's own imports (``No module named 'packaging'``).
    from kombu.transport import resolve_transport

    transport = resolve_transport("redis")

    assert transport.__name__ == "Transport"
    assert transport.driver_name == "redis"
