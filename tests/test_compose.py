"""Compose loading: interpolation, build specs, volumes, names as compose v1/v2 compute them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import missing

from attune_console.core.compose import interpolate, load_compose, normalise_project_name, read_dotenv
from attune_console.core.compose_cli import detect
from attune_console.core.errors import InputError

COMPOSE = """\
services:
  init-packs:
    image: ${RUNTIME_IMAGE:-debian:bookworm-slim}
    volumes:
      - ./packs:/source/packs:ro
      - packs_data:/opt/attune/packs
  api:
    build:
      context: .
      dockerfile: docker/Dockerfile.optimized
      args:
        SERVICE: api
        RUST_IMAGE: ${RUST_IMAGE}
        EMPTY: ${NOT_SET-}
        FROM_ENV:
      target: runtime
    volumes:
      - packs_data:/opt/attune/packs:ro
      - type: bind
        source: ./config
        target: /etc/attune
        read_only: true
    depends_on:
      init-packs:
        condition: service_completed_successfully
    profiles: [full]
    command: attune-api --port "80 80"
    environment:
      - RUST_LOG=info
  worker:
    image: custom/worker:dev
    build: ./w
    depends_on: [api]
volumes:
  packs_data:
  ext:
    external: true
  named:
    name: real-name
"""


def _ws(tmp_path: Path, compose: str = COMPOSE, env: str = "RUST_IMAGE=rust-local:1\n") -> Path:
    root = tmp_path / "My_Proj.X"
    root.mkdir()
    (root / "docker-compose.yaml").write_text(compose)
    (root / ".env").write_text(env)
    return root


def test_load_v2_names_build_volumes(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    p = load_compose(root, environ={"FROM_ENV": "x"}, flavour=2)
    assert p.name == "my_projx"
    assert p.flavour == 2
    assert p.file == root / "docker-compose.yaml"
    api = p.services["api"]
    assert api.image == "my_projx-api"
    assert not api.explicit_image
    assert api.build is not None
    assert api.build.context == root
    assert api.build.dockerfile == root / "docker" / "Dockerfile.optimized"
    assert api.build.args == {"SERVICE": "api", "RUST_IMAGE": "rust-local:1", "EMPTY": "", "FROM_ENV": "x"}
    assert api.build.target == "runtime"
    assert api.volumes[0].type == "volume"
    assert api.volumes[0].source == "packs_data"
    assert api.volumes[0].read_only
    assert api.volumes[1].type == "bind"
    assert api.volumes[1].source == str(root / "config")
    assert api.volumes[1].read_only
    assert api.depends_on == {"init-packs": "service_completed_successfully"}
    assert api.profiles == ("full",)
    assert api.command == ["attune-api", "--port", "80 80"]
    assert api.environment == {"RUST_LOG": "info"}
    assert api.line == 7
    init = p.services["init-packs"]
    assert init.image == "debian:bookworm-slim"
    assert init.volumes[0].type == "bind" and init.volumes[0].read_only
    assert init.volumes[1].source == "packs_data" and not init.volumes[1].read_only
    worker = p.services["worker"]
    assert worker.image == "custom/worker:dev"
    assert worker.build is not None and worker.build.dockerfile == root / "w" / "Dockerfile"
    assert worker.depends_on == {"api": "service_started"}
    assert p.volumes == {"packs_data": "my_projx_packs_data", "ext": "ext", "named": "real-name"}


def test_v1_names_and_unset_build_arg_dropped(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    p = load_compose(root, environ={}, flavour=1)
    assert p.services["api"].image == "my_projx_api"
    assert p.services["api"].build is not None
    assert "FROM_ENV" not in p.services["api"].build.args
    assert p.volumes["packs_data"] == "my_projx_packs_data"


def test_environment_overrides_dotenv_and_project_name(tmp_path: Path) -> None:
    root = _ws(tmp_path, env="RUST_IMAGE=from-dotenv\nCOMPOSE_PROJECT_NAME=Demo.One\n")
    p = load_compose(root, environ={"RUST_IMAGE": "from-env"}, flavour=2)
    assert p.name == "demoone"
    assert p.services["api"].build is not None
    assert p.services["api"].build.args["RUST_IMAGE"] == "from-env"
    assert p.volumes["packs_data"] == "demoone_packs_data"


def test_top_level_name_v2_only(tmp_path: Path) -> None:
    root = _ws(tmp_path, compose="name: Other\n" + COMPOSE)
    assert load_compose(root, environ={}, flavour=2).name == "other"
    assert load_compose(root, environ={}, flavour=1).name == "my_projx"


def test_interpolation_forms() -> None:
    env = {"A": "a", "E": ""}
    assert interpolate("${A}-$A-${A:-x}-${E:-d}-${E-d}-${U-u}-$$A", env) == "a-a-a-d--u-$A"
    assert interpolate("${U:-${A}}", env) == "a"
    assert interpolate("${A:+alt}${E:+no}", env) == "alt"
    with pytest.raises(ValueError, match="required variable U"):
        interpolate("${U:?need U}", env)
    with pytest.raises(ValueError, match="invalid interpolation"):
        interpolate("${A B}", env)


def test_required_variable_names_file_and_line(tmp_path: Path) -> None:
    root = _ws(tmp_path, compose="services:\n  a:\n    image: ${MISSING:?set MISSING}\n")
    with pytest.raises(InputError) as info:
        load_compose(root, environ={}, flavour=2)
    assert info.value.line == 3
    assert info.value.file == root / "docker-compose.yaml"
    assert "MISSING" in str(info.value)


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    root = _ws(tmp_path, compose="services:\n  a:\n    image: [x\n  b: 1\n")
    with pytest.raises(InputError) as info:
        load_compose(root, environ={}, flavour=2)
    assert info.value.file == root / "docker-compose.yaml"
    assert info.value.line is not None and info.value.line >= 3
    assert info.value.col is not None


def test_bad_dotenv_line(tmp_path: Path) -> None:
    root = _ws(tmp_path, env="OK=1\nthis is not an assignment\n")
    with pytest.raises(InputError) as info:
        read_dotenv(root / ".env")
    assert info.value.line == 2


def test_dotenv_quotes_comments(tmp_path: Path) -> None:
    f = tmp_path / ".env"
    f.write_text("# c\nA=\"x y\"\nexport B='z'\nC=v # trailing\n\n")
    assert read_dotenv(f) == {"A": "x y", "B": "z", "C": "v"}


def test_service_shape_errors(tmp_path: Path) -> None:
    root = _ws(tmp_path, compose="services:\n  a:\n    image: x\n    volumes: nope\n")
    with pytest.raises(InputError) as info:
        load_compose(root, environ={}, flavour=2)
    assert info.value.line == 2


def test_project_name_normalisation() -> None:
    assert normalise_project_name("_My Demo!", 1) == "_mydemo"
    assert normalise_project_name("_My Demo!", 2) == "mydemo"


def test_matches_docker_compose_v1_config(tmp_path: Path) -> None:
    """Our interpolation and image naming agree with what docker-compose 1.x itself resolves."""
    if shutil.which("docker-compose") is None:
        missing("docker-compose v1 not installed (scripts/setup.sh installs it)")
    root = _ws(tmp_path)
    (root / "w").mkdir()
    out = subprocess.run(
        ["docker-compose", "config"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin"},
    ).stdout
    p = load_compose(root, environ={}, flavour=1)
    assert "RUST_IMAGE: rust-local:1" in out
    assert p.services["api"].build is not None
    assert p.services["api"].build.args["RUST_IMAGE"] == "rust-local:1"
    assert "EMPTY: ''" in out


def test_detect_is_cached_and_consistent() -> None:
    first = detect()
    assert detect() is first
    if first is not None:
        assert first.version in (1, 2)
        assert first.argv


def test_detect_forced_and_standalone_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from attune_console.core import compose_cli

    v2 = tmp_path / "docker-compose"
    v2.write_text("#!/bin/sh\necho v2.24.6\n")
    v2.chmod(0o755)
    assert compose_cli._standalone_version(str(v2)) == 2
    v1 = tmp_path / "v1"
    v1.write_text("#!/usr/bin/python3\nprint('never run')\n")
    assert compose_cli._standalone_version(str(v1)) == 1
    compose_cli.detect.cache_clear()
    try:
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.setenv("ATTUNE_COMPOSE", "v1")
        found = compose_cli.detect()
        assert found == compose_cli.ComposeCLI(argv=(str(v2),), version=2)
        compose_cli.detect.cache_clear()
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        assert compose_cli.detect() is None
    finally:
        compose_cli.detect.cache_clear()


def test_flavour_detected_when_not_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from attune_console.core import compose_cli

    monkeypatch.setattr(compose_cli, "detect", lambda: compose_cli.ComposeCLI(("docker-compose",), 1))
    root = _ws(tmp_path)
    assert load_compose(root, environ={}).services["api"].image == "my_projx_api"
