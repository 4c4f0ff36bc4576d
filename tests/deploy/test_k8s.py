"""deploy/k8s: the manifests parse, refer to each other consistently, and match the app:
settings it reads, its port, data dir, routes, image and user."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.facts import (
    DEPLOY,
    ROOT,
    parse_dockerfile,
    settings_env_names,
    web_routes,
    worker_image,
)
from trustscore_stream.settings import load_settings

K8S = DEPLOY / "k8s"
EXAMPLE_SECRET = "secret.example.yaml"


def load(path: Path) -> list[dict[str, Any]]:
    with path.open() as file:
        return [doc for doc in yaml.safe_load_all(file) if doc is not None]


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    kustomization = load(K8S / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", EXAMPLE_SECRET}
    assert listed == files, "kustomization.yaml lists every manifest (secrets stay out)"
    for name in [*sorted(files), EXAMPLE_SECRET]:
        for doc in load(K8S / name):
            assert doc["apiVersion"] and doc["metadata"]["name"], name
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"{key} twice"
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == kustomization["namespace"], key
            found[key] = doc
    return found


def worker_set(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    (statefulset,) = [doc for (kind, _), doc in objects.items() if kind == "StatefulSet"]
    return statefulset


def container(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    (worker,) = worker_set(objects)["spec"]["template"]["spec"]["containers"]
    assert isinstance(worker, dict)
    return worker


def worker_env(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, str]:
    """The worker's environment as the kubelet builds it: envFrom sources, then env, with
    `$(NAME)` references expanded (fieldRefs get placeholder values)."""
    spec = container(objects)
    env: dict[str, str] = {}
    for source in spec["envFrom"]:
        if "configMapRef" in source:
            env.update(objects[("ConfigMap", source["configMapRef"]["name"])]["data"])
        else:
            env.update(objects[("Secret", source["secretRef"]["name"])]["stringData"])
    for item in spec["env"]:
        if "valueFrom" in item:
            env[item["name"]] = f"<{item['valueFrom']['fieldRef']['fieldPath']}>"
        else:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
    return env


def test_env_names_are_settings_the_app_reads(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    spec = container(objects)
    env = worker_env(objects)
    referenced = {
        name
        for item in spec["env"]
        if "value" in item
        for name in re.findall(r"\$\((\w+)\)", item["value"])
    }
    for name in env:
        if name.startswith("TRUSTSCORE_"):
            assert name in settings_env_names(), f"{name} is not a setting of the app"
        else:
            assert name in referenced, f"{name} is neither a setting nor used by one"
    settings = load_settings(env)  # raises SettingsError on a bad value
    assert settings.broker is not None
    assert settings.web_bind == "0.0.0.0"
    assert (settings.database_url or "").startswith("postgresql+psycopg://")
    assert settings.jwt_secret and settings.ingest_keys


def test_web_host_is_the_pod_name_in_the_headless_service(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    statefulset = worker_set(objects)
    service = objects[("Service", statefulset["spec"]["serviceName"])]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    env = worker_env(objects)
    assert env["TRUSTSCORE_WEB_HOST"] == (
        f"<metadata.name>.{service['metadata']['name']}.<metadata.namespace>.svc.cluster.local"
    )


def test_services_and_budget_select_the_worker_pods(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    statefulset = worker_set(objects)
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    selector = statefulset["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    port_names = {p["name"] for p in container(objects)["ports"]}
    services = [doc for (kind, _), doc in objects.items() if kind == "Service"]
    assert len(services) == 2
    for service in services:
        assert service["spec"]["selector"].items() <= labels.items()
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names
    (budget,) = [doc for (kind, _), doc in objects.items() if kind == "PodDisruptionBudget"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] == 1


def test_port_probes_and_metrics_match_the_app(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    spec = container(objects)
    settings = load_settings(worker_env(objects))
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert list(ports.values()) == [settings.web_port]
    probes = {
        kind: spec[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    for kind, probe in probes.items():
        assert probe["path"] in web_routes(), f"{kind}: {probe['path']} is not a route"
        assert ports[probe["port"]] == settings.web_port
    assert probes["livenessProbe"]["path"] == "/health"
    assert probes["readinessProbe"]["path"] == "/ready"
    annotations = worker_set(objects)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in web_routes()
    assert int(annotations["prometheus.io/port"]) == settings.web_port


def test_data_volume_is_the_data_dir_of_image_and_settings(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    image_data_dir = parse_dockerfile(ROOT / "Dockerfile").runtime.env()["TRUSTSCORE_DATA_DIR"]
    settings = load_settings(worker_env(objects))
    assert str(settings.data_dir) == image_data_dir
    (claim,) = worker_set(objects)["spec"]["volumeClaimTemplates"]
    mounts = {m["mountPath"]: m["name"] for m in container(objects)["volumeMounts"]}
    assert mounts[image_data_dir] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_image_user_and_shutdown(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    spec = container(objects)
    pod = worker_set(objects)["spec"]["template"]["spec"]
    assert spec["image"] == worker_image()
    assert "command" not in spec and "args" not in spec, "the image's CMD is the worker"
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == security["runAsGroup"] == security["fsGroup"] == 10001
    created = " ".join(parse_dockerfile(ROOT / "Dockerfile").runtime.all("RUN"))
    assert "--uid 10001" in created and "--gid 10001" in created
    assert spec["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["terminationGracePeriodSeconds"] >= 60
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(spec["resources"][kind])
