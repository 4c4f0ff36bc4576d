"""The Dockerfile, read as text: it cannot be built here (no Docker daemon), so each thing a
build or a run would depend on is checked against the repository and the app's code."""

from __future__ import annotations

import importlib.util
import json
import re

from tests.deploy.facts import (
    ROOT,
    default_web_port,
    parse_dockerfile,
    pyproject,
    settings_env_names,
    web_routes,
)

DOCKERFILE = parse_dockerfile(ROOT / "Dockerfile")


def test_multi_stage_build_whose_runtime_copies_from_the_builder() -> None:
    names = [stage.name for stage in DOCKERFILE.stages]
    assert len(DOCKERFILE.stages) >= 2, "expected a builder stage and a runtime stage"
    copies_from = [re.search(r"--from=(\S+)", args) for args in DOCKERFILE.runtime.all("COPY")]
    sources = {match.group(1) for match in copies_from if match}
    assert sources and sources <= set(names[:-1]), sources
    for stage in DOCKERFILE.stages:
        assert ":" in stage.base and not stage.base.endswith(":latest"), stage.base


def test_every_copy_source_exists_in_the_repository() -> None:
    checked = 0
    for stage in DOCKERFILE.stages:
        for args in stage.all("COPY"):
            if "--from=" in args:
                continue
            *sources, _destination = [arg for arg in args.split() if not arg.startswith("--")]
            for source in sources:
                # A wildcard may match nothing (README*), but a plain path must exist.
                if any(char in source for char in "*?["):
                    continue
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                checked += 1
    assert checked >= 4


def test_copied_code_is_every_package_folder_the_build_installs() -> None:
    copied = {
        args.split()[0].rstrip("/")
        for args in DOCKERFILE.stages[0].all("COPY")
        if "--from=" not in args
    }
    # setuptools follows the trustscore_stream/{agents,tables,web} symlinks to these.
    for link in ("agents", "tables", "web"):
        assert (ROOT / "trustscore_stream" / link).is_symlink()
        assert link in copied, f"{link}/ is not copied: its symlink would dangle"
    assert "trustscore_stream" in copied and "pyproject.toml" in copied


def test_runtime_runs_as_a_non_root_user() -> None:
    users = DOCKERFILE.runtime.all("USER")
    assert users, "the runtime stage sets no USER: it would run as root"
    user = users[-1]
    assert user not in ("root", "0")
    created = " ".join(DOCKERFILE.runtime.all("RUN"))
    uid = re.search(rf"useradd[^&]*--uid (\d+)[^&]*\b{re.escape(user)}\b", created)
    assert uid and int(uid.group(1)) == 10001, "the user is created with uid 10001"


def test_data_volume_is_the_configured_data_dir() -> None:
    env = DOCKERFILE.runtime.env()
    assert env["TRUSTSCORE_DATA_DIR"] == "/data"
    assert DOCKERFILE.runtime.all("VOLUME") == ["/data"]
    assert "chown trustscore:trustscore /data" in " ".join(DOCKERFILE.runtime.all("RUN"))


def test_env_names_are_settings_and_port_is_the_default() -> None:
    env = DOCKERFILE.runtime.env()
    names = {name for name in env if name.startswith("TRUSTSCORE_")}
    assert names and names <= settings_env_names(), names - settings_env_names()
    assert int(env["TRUSTSCORE_WEB_PORT"]) == default_web_port()
    assert DOCKERFILE.runtime.all("EXPOSE") == [env["TRUSTSCORE_WEB_PORT"]]
    # Other hosts (other workers, the health check's container runtime) must reach it.
    assert env["TRUSTSCORE_WEB_BIND"] == "0.0.0.0"


def test_healthcheck_gets_health_on_the_web_port() -> None:
    (healthcheck,) = DOCKERFILE.runtime.all("HEALTHCHECK")
    url = re.search(r"http://127\.0\.0\.1:%s(/[\w/]*)'", healthcheck)
    assert url, healthcheck
    assert url.group(1) == "/health"
    assert url.group(1) in web_routes()
    default = re.search(r"environ\.get\('TRUSTSCORE_WEB_PORT', '(\d+)'\)", healthcheck)
    assert default and int(default.group(1)) == default_web_port()


def test_command_is_the_standard_worker() -> None:
    (cmd,) = DOCKERFILE.runtime.all("CMD")
    argv = json.loads(cmd)
    scripts = pyproject()["project"]
    assert isinstance(scripts, dict)
    if argv[0] == "faust":
        module = argv[argv.index("-A") + 1]
        assert "worker" in argv[argv.index("-A") + 2 :]
        assert importlib.util.find_spec(module) is not None, module
        assert module == "trustscore_stream.app"
    else:
        assert argv[0] in scripts["scripts"], f"{argv[0]} is not a console script"
        assert argv[1] == "worker"
