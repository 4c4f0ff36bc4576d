"""deploy/docker-compose.yml: valid for docker-compose (Debian's 1.29, `make test` installs
it), and consistent with the app: settings, port, data dir, routes, image and the
Prometheus and Grafana files it mounts."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.facts import (
    DEPLOY,
    ROOT,
    parse_dockerfile,
    settings_env_names,
    tool,
    web_routes,
    worker_image,
)
from trustscore_stream.settings import load_settings

COMPOSE = DEPLOY / "docker-compose.yml"
SECRETS = {
    "POSTGRES_PASSWORD": "test-password",
    "TRUSTSCORE_JWT_SECRET": "test-jwt-secret-test-jwt-secret-test-jwt",
    "TRUSTSCORE_INGEST_KEYS": "producer-1:test-secret",
    "GRAFANA_ADMIN_PASSWORD": "test-admin",
}


def compose_config(tmp_path: Path, variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # An empty env file, so that a developer's deploy/.env does not change the outcome.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "KAFKA_CLUSTER_ID"}
    return subprocess.run(
        [
            tool("docker-compose", "docker-compose"),
            "--env-file",
            str(env_file),
            "-f",
            str(COMPOSE),
            "config",
        ],
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    done = compose_config(tmp_path_factory.mktemp("compose"), SECRETS)
    assert done.returncode == 0, f"docker-compose config failed:\n{done.stderr}"
    resolved = yaml.safe_load(done.stdout)
    assert isinstance(resolved, dict)
    return resolved


def workers(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {
        name: service
        for name, service in config["services"].items()
        if service.get("image") == worker_image()
    }
    assert len(found) >= 2, f"expected two workers with image {worker_image()}"
    return found


def test_validates_with_docker_compose(config: dict[str, Any]) -> None:
    assert {"kafka", "postgres", "prometheus", "grafana"} <= set(config["services"])


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_refuses_to_run_without_each_secret(tmp_path: Path, missing: str) -> None:
    variables = {k: v for k, v in SECRETS.items() if k != missing}
    done = compose_config(tmp_path, variables)
    assert done.returncode != 0
    assert missing in done.stderr


def test_images_are_pinned(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: {image} has no tag"
        assert not image.endswith(":latest"), f"{name}: pin a version, not latest"
    assert config["services"]["kafka"]["image"].startswith("apache/kafka:")


def test_kafka_is_one_kraft_node_that_creates_no_topics_itself(config: dict[str, Any]) -> None:
    env = config["services"]["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "healthcheck" in config["services"]["kafka"]
    mounts = {v.split(":")[1] for v in config["services"]["kafka"]["volumes"]}
    assert env["KAFKA_LOG_DIRS"] in mounts


def test_workers_are_built_from_the_repository_dockerfile(config: dict[str, Any]) -> None:
    for name, service in workers(config).items():
        build = service["build"]
        assert Path(build["context"]).resolve() == ROOT, name
        assert (Path(build["context"]) / build["dockerfile"]).resolve() == ROOT / "Dockerfile"


def test_worker_environment_is_real_settings_that_load(config: dict[str, Any]) -> None:
    services = config["services"]
    for name, service in workers(config).items():
        env = {k: str(v) for k, v in service["environment"].items()}
        unknown = set(env) - settings_env_names()
        assert not unknown, f"{name} sets variables the app never reads: {unknown}"
        settings = load_settings(env)  # raises SettingsError on a bad value
        assert settings.web_host == name, "other workers reach it by its service name"
        assert settings.web_bind == "0.0.0.0"
        assert settings.jwt_secret == SECRETS["TRUSTSCORE_JWT_SECRET"]
        assert settings.ingest_keys, "POST /api/v1/events must not be open"
        broker = urlsplit(settings.broker_url)
        assert broker.hostname in services and broker.port == 9092
        database = urlsplit(settings.database_url or "")
        assert database.scheme == "postgresql+psycopg"
        assert database.hostname in services and database.port == 5432
        assert database.password == SECRETS["POSTGRES_PASSWORD"]
        assert services["postgres"]["environment"]["POSTGRES_USER"] == database.username
        assert services["postgres"]["environment"]["POSTGRES_DB"] == database.path.lstrip("/")
        for dependency in (broker.hostname, database.hostname):
            assert service["depends_on"][dependency]["condition"] == "service_healthy"
            assert "healthcheck" in services[dependency]


def test_worker_port_data_volume_and_healthcheck(config: dict[str, Any]) -> None:
    data_dir = parse_dockerfile(ROOT / "Dockerfile").runtime.env()["TRUSTSCORE_DATA_DIR"]
    volumes_seen: set[str] = set()
    for name, service in workers(config).items():
        settings = load_settings({k: str(v) for k, v in service["environment"].items()})
        assert str(settings.data_dir) == data_dir
        # "host_ip:host_port:container_port/protocol"
        targets = [port.split("/")[0].rsplit(":", 1)[1] for port in service["ports"]]
        assert targets == [str(settings.web_port)], f"{name} publishes {targets}"
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert data_dir in mounts, f"{name} has no volume at {data_dir}"
        source = mounts[data_dir]
        assert source in config["volumes"], f"{name}: {source} is not a named volume"
        assert source not in volumes_seen, "two workers must never share a data dir"
        volumes_seen.add(source)
        check = " ".join(service["healthcheck"]["test"])
        url = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", check)
        assert url and int(url.group(1)) == settings.web_port, check
        assert url.group(2) in web_routes()
        grace = re.fullmatch(r"(\d+)s", service["stop_grace_period"])
        assert grace and int(grace.group(1)) >= 30, "Faust needs time for a clean shutdown"


def test_prometheus_scrapes_every_worker_with_the_files_in_deploy(config: dict[str, Any]) -> None:
    service = config["services"]["prometheus"]
    config_file = next(a for a in service["command"] if a.startswith("--config.file="))
    container_path = Path(config_file.split("=", 1)[1])
    mounts = {Path(v.split(":")[1]): Path(v.split(":")[0]) for v in service["volumes"]}
    assert mounts[container_path.parent] == DEPLOY / "prometheus"
    with (DEPLOY / "prometheus" / "prometheus.yml").open() as file:
        prometheus = yaml.safe_load(file)
    assert prometheus["rule_files"] == ["alerts.yml"]
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "trustscore"]
    assert job["metrics_path"] in web_routes()
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    expected = set()
    for name, worker in workers(config).items():
        port = load_settings({k: str(v) for k, v in worker["environment"].items()}).web_port
        expected.add(f"{name}:{port}")
    assert targets == expected


def test_grafana_mounts_its_provisioning_and_the_dashboard(config: dict[str, Any]) -> None:
    service = config["services"]["grafana"]
    mounts = {v.split(":")[1]: Path(v.split(":")[0]) for v in service["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    with (DEPLOY / "grafana/provisioning/dashboards/trustscore.yml").open() as file:
        (provider,) = yaml.safe_load(file)["providers"]
    dashboard_dir = provider["options"]["path"]
    assert mounts[f"{dashboard_dir}/trustscore.json"] == DEPLOY / "grafana" / "trustscore.json"
    with (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").open() as file:
        (datasource,) = yaml.safe_load(file)["datasources"]
    url = urlsplit(datasource["url"])
    assert url.hostname in config["services"] and url.hostname == "prometheus"
    assert url.port == 9090
