"""The demo workspace works: it builds with BuildKit on the real daemon and its services see the packs.

Cheap checks first (manifests, lock file, Dockerfile planner stages, compose file), then the real thing:
the five service images and the pack-binaries image build through ``DOCKER_BUILDKIT=1 docker build``
(the 20.10 CLI, as a user would run it), an ``api`` container with a packs volume filled from
``./packs`` answers its GET with the core pack and the exact content of its files, every other
service lists the packs at start, and an edit of ``crates/api/src/main.rs`` carrying an OLD mtime
still reaches the rebuilt binary while the worker stays cached.

Images, containers and volumes get unique names and are removed afterwards; the base images made by
``demo-workspace/scripts/bootstrap-images.sh`` are only read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import yaml
from conftest import missing

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEMO = Path(__file__).resolve().parent.parent / "demo-workspace"
SERVICES = ("api", "executor", "worker", "sensor", "notifier")
COMPOSE_SERVICES = {
    "api": "api",
    "executor": "executor",
    "worker-shell": "worker",
    "sensor": "sensor",
    "notifier": "notifier",
}
MEMBERS = ("common", "api", "executor", "worker", "sensor", "notifier", "core-timer-sensor")
DOCKERFILES = ("Dockerfile.optimized", "Dockerfile.worker.optimized", "Dockerfile.pack-binaries")


def _docker_cli() -> str:
    """The docker CLI for builds: $DOCKER, else 20.10's /usr/bin/docker (BuildKit without buildx)."""
    if os.environ.get("DOCKER"):
        return os.environ["DOCKER"]
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    found = shutil.which("docker")
    if not found:
        pytest.fail("no docker CLI found; install docker.io (see scripts/setup.sh)")
    return found


def _env_file(root: Path) -> dict[str, str]:
    env_path = root / ".env"
    if not env_path.is_file():
        pytest.fail(f"{env_path} is missing: run demo-workspace/scripts/bootstrap-images.sh first")
    values = {}
    for line in env_path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    for key in ("RUST_IMAGE", "RUNTIME_IMAGE"):
        if not values.get(key):
            pytest.fail(f"{env_path} has no {key}=: run demo-workspace/scripts/bootstrap-images.sh")
    return values


def _fnv1a64(data: bytes) -> str:
    """The checksum attune_common::packs reports (FNV-1a 64, 16 hex digits)."""
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def _build(root: Path, dockerfile: str, tag: str, args: dict[str, str]) -> str:
    """``DOCKER_BUILDKIT=1 docker build`` in ``root``; returns the plain progress log."""
    cmd = [_docker_cli(), "build", "--progress=plain", "-f", f"docker/{dockerfile}", "-t", tag]
    for key, value in args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    proc = subprocess.run(
        [*cmd, "."],
        cwd=root,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}"
    return proc.stderr


def _executed_steps(log: str) -> list[str]:
    """Names of the Dockerfile steps (``[stage n/m] ...``) that BuildKit ran rather than took cached."""
    names: dict[str, str] = {}
    cached: set[str] = set()
    done: set[str] = set()
    for line in log.splitlines():
        m = re.match(r"#(\d+) (\[.*)", line)
        if m and not m.group(2).startswith("[internal]"):
            names.setdefault(m.group(1), m.group(2))
        m = re.match(r"#(\d+) (CACHED|DONE)", line)
        if m:
            (cached if m.group(2) == "CACHED" else done).add(m.group(1))
    # FROM steps report DONE even when nothing ran: they never count as work.
    return sorted(names[i] for i in done - cached if i in names and "] FROM" not in names[i])


def _remove_image(client: Any, tag: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        client.images.remove(tag, force=True)


def _http_get_json(port: int, path: str = "/", deadline: float = 15.0) -> dict[str, Any]:
    end = time.monotonic() + deadline
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
                return json.loads(resp.read())  # type: ignore[no-any-return]
        except Exception as exc:  # not listening yet
            last = exc
            time.sleep(0.2)
    raise AssertionError(f"api did not answer GET {path} on 127.0.0.1:{port}: {last}")


def _wait_for_log(container: Any, pattern: str, deadline: float = 15.0) -> str:
    end = time.monotonic() + deadline
    logs = ""
    while time.monotonic() < end:
        logs = container.logs().decode(errors="replace")
        if re.search(pattern, logs):
            return logs
        container.reload()
        if container.status == "exited":
            break
        time.sleep(0.2)
    raise AssertionError(f"no log line matching {pattern!r} from {container.name}; logs:\n{logs}")


# --------------------------------------------------------------------------- cheap checks (no Docker)


def test_cargo_lock_is_version_3_and_lists_every_member() -> None:
    lock = tomllib.loads((DEMO / "Cargo.lock").read_text())
    assert lock["version"] == 3, "Debian's cargo 0.66 cannot read lock files newer than version 3"
    names = {p["name"] for p in lock["package"]}
    assert names == {f"attune-{m}" for m in MEMBERS}
    assert all("source" not in p for p in lock["package"]), "std only: no registry crates"


def test_members_and_binaries() -> None:
    root = tomllib.loads((DEMO / "Cargo.toml").read_text())
    assert root["workspace"]["members"] == [f"crates/{m}" for m in MEMBERS]
    bins = {}
    for member in MEMBERS:
        manifest = tomllib.loads((DEMO / "crates" / member / "Cargo.toml").read_text())
        for b in manifest.get("bin", []):
            bins[b["name"]] = member
        deps = manifest.get("dependencies", {})
        assert all("path" in spec for spec in deps.values()), f"{member}: std only, path dependencies only"
        if member != "common":
            assert "attune-common" in deps, f"{member} should share code from common"
    assert bins == {
        **{f"attune-{s}": s for s in SERVICES},
        "attune-core-timer-sensor": "core-timer-sensor",
    }
    worker = tomllib.loads((DEMO / "crates/worker/Cargo.toml").read_text())
    assert worker["dependencies"]["attune-executor"] == {"path": "../executor"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_planner_copies_every_member_manifest_and_no_syntax_line(dockerfile: str) -> None:
    text = (DEMO / "docker" / dockerfile).read_text()
    assert not re.search(r"(?im)^#\s*syntax\s*=", text), "a syntax line needs a registry"
    for member in MEMBERS:
        assert f"COPY crates/{member}/Cargo.toml ./crates/{member}/Cargo.toml" in text, (dockerfile, member)
    if dockerfile != "Dockerfile.pack-binaries":
        assert "id=target-builder-${SERVICE}" in text
        assert text.count("ARG SERVICE") == 3, "ARG SERVICE must be declared in each of the three stages"
        runtime = text.split("AS runtime", 1)[1]
        copies = [ln for ln in runtime.splitlines() if ln.split()[:1] in (["COPY"], ["ADD"])]
        assert copies == ["COPY --from=builder /out/ /usr/local/bin/"], "runtime: the binary only, no packs"


def test_compose_file_shape() -> None:
    compose = yaml.safe_load((DEMO / "docker-compose.yaml").read_text())
    assert "packs_data" in compose["volumes"]
    services = compose["services"]
    init = services["init-packs"]
    assert "./packs:/source/packs:ro" in init["volumes"]
    for name, service_arg in COMPOSE_SERVICES.items():
        svc = services[name]
        assert svc["build"]["args"]["SERVICE"] == service_arg
        assert svc["build"]["args"]["RUST_IMAGE"] == "${RUST_IMAGE:-rust:1.83-bookworm}"
        assert "packs_data:/opt/attune/packs:ro" in svc["volumes"]
        assert svc["depends_on"]["init-packs"]["condition"] == "service_completed_successfully"


def test_compose_cli_accepts_the_file(demo_copy: Path) -> None:
    from attune_console.core.compose_cli import detect

    cli = detect()
    if cli is None:
        missing("neither docker compose v2 nor docker-compose v1 is installed (scripts/setup.sh installs it)")
    proc = subprocess.run(
        [*cli.argv, "config", "-q"], cwd=demo_copy, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"compose v{cli.version} rejects docker-compose.yaml: {proc.stderr}"


# --------------------------------------------------------------------------- real daemon


@pytest.fixture(scope="module")
def built(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One private copy of the demo with all six images built once, shared by the checks below."""
    root = tmp_path_factory.mktemp("demo") / f"attune-demo-{uuid.uuid4().hex[:8]}"
    shutil.copytree(DEMO, root, ignore=shutil.ignore_patterns("target", ".git", "__pycache__"))
    env = _env_file(root)
    base = {"RUST_IMAGE": env["RUST_IMAGE"], "RUNTIME_IMAGE": env["RUNTIME_IMAGE"]}
    prefix = f"attune-demo-test-{uuid.uuid4().hex[:8]}"
    build_id = f"test-{uuid.uuid4().hex[:12]}"
    tags: dict[str, str] = {}
    timings: dict[str, float] = {}
    try:
        for service in SERVICES:
            dockerfile = "Dockerfile.worker.optimized" if service == "worker" else "Dockerfile.optimized"
            args = {**base, "SERVICE": service}
            if service == "api":
                args["ATTUNE_BUILD_ID"] = build_id
            tags[service] = f"{prefix}/{service}:test"
            start = time.monotonic()
            _build(root, dockerfile, tags[service], args)
            timings[service] = time.monotonic() - start
        tags["pack-binaries"] = f"{prefix}/pack-builder:test"
        start = time.monotonic()
        _build(root, "Dockerfile.pack-binaries", tags["pack-binaries"], base)
        timings["pack-binaries"] = time.monotonic() - start
        print(f"demo image build seconds: {timings}")
        yield {"root": root, "tags": tags, "build_id": build_id, "runtime": env["RUNTIME_IMAGE"]}
    finally:
        for tag in tags.values():
            _remove_image(docker_client, tag)


@pytest.fixture
def packs_volume(docker_client: Any, built: dict[str, Any]) -> Iterator[str]:
    """A fresh volume holding a copy of the demo's ./packs, as init-packs makes it."""
    name = f"attune-demo-test-packs-{uuid.uuid4().hex[:8]}"
    docker_client.volumes.create(name)
    try:
        docker_client.containers.run(
            built["runtime"],
            ["sh", "-c", "cp -a /source/packs/. /opt/attune/packs/"],
            volumes={
                str(built["root"] / "packs"): {"bind": "/source/packs", "mode": "ro"},
                name: {"bind": "/opt/attune/packs", "mode": "rw"},
            },
            remove=True,
        )
        yield name
    finally:
        docker_client.volumes.get(name).remove(force=True)


def test_service_images_hold_the_binary_and_no_packs(docker_client: Any, built: dict[str, Any]) -> None:
    for service in SERVICES:
        out = docker_client.containers.run(
            built["tags"][service],
            entrypoint=["sh", "-c", "ls /usr/local/bin; find /opt/attune -mindepth 1 | sort"],
            remove=True,
        ).decode()
        assert f"attune-{service}" in out.split()
        assert out.split()[-2:] == ["/opt/attune/logs", "/opt/attune/packs"], out


def test_api_answers_with_the_core_pack(docker_client: Any, built: dict[str, Any], packs_volume: str) -> None:
    core = built["root"] / "packs" / "core"
    on_disk = {p.relative_to(core).as_posix(): p.read_bytes() for p in sorted(core.rglob("*")) if p.is_file()}
    container = docker_client.containers.run(
        built["tags"]["api"],
        detach=True,
        name=f"attune-demo-test-api-{uuid.uuid4().hex[:8]}",
        volumes={packs_volume: {"bind": "/opt/attune/packs", "mode": "ro"}},
        ports={"8080/tcp": ("127.0.0.1", None)},
        environment={"ATTUNE_HEARTBEAT_SECS": "1"},
    )
    try:
        container.reload()
        port = int(container.ports["8080/tcp"][0]["HostPort"])
        answer = _http_get_json(port)
        assert answer["service"] == "api"
        assert answer["build_id"] == built["build_id"], "the image must run the binary built just now"
        packs = {p["name"]: p for p in answer["packs"]}
        assert set(packs) == {"core"}
        assert packs["core"]["files"] == len(on_disk)
        assert {f["path"]: f["checksum"] for f in packs["core"]["files_list"]} == {
            path: _fnv1a64(data) for path, data in on_disk.items()
        }
        _wait_for_log(container, r"pack core: \d+ files")
        _wait_for_log(container, r"heartbeat uptime=")

        # Change an action inside the volume, send SIGHUP: the api re-reads and shows the new content.
        new_text = b"name: echo\nrunner_type: shell\ndescription: changed by the test\n"
        docker_client.containers.run(
            built["runtime"],
            ["sh", "-c", 'printf "%s" "$0" > /opt/attune/packs/core/actions/echo.yaml', new_text.decode()],
            volumes={packs_volume: {"bind": "/opt/attune/packs", "mode": "rw"}},
            remove=True,
        )
        assert _http_get_json(port)["loads"] == 1
        container.kill(signal="SIGHUP")
        deadline = time.monotonic() + 10
        while (answer := _http_get_json(port))["loads"] < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        files = {f["path"]: f for f in answer["packs"][0]["files_list"]}
        assert files["actions/echo.yaml"]["checksum"] == _fnv1a64(new_text)
        assert files["actions/echo.yaml"]["size"] == len(new_text)
    finally:
        container.stop(timeout=5)
        container.remove(force=True)


@pytest.mark.parametrize("service", ["executor", "worker", "sensor", "notifier"])
def test_other_services_list_the_packs(
    docker_client: Any, built: dict[str, Any], packs_volume: str, service: str
) -> None:
    container = docker_client.containers.run(
        built["tags"][service],
        detach=True,
        name=f"attune-demo-test-{service}-{uuid.uuid4().hex[:8]}",
        volumes={packs_volume: {"bind": "/opt/attune/packs", "mode": "ro"}},
    )
    try:
        files = sum(1 for p in (built["root"] / "packs" / "core").rglob("*") if p.is_file())
        logs = _wait_for_log(container, rf"attune-{service} INFO pack core: {files} files")
        assert f"starting attune-{service}" in logs
        if service == "worker":
            actions = [
                yaml.safe_load(p.read_text()) for p in (built["root"] / "packs/core/actions").glob("*.yaml")
            ]
            shell = sorted(f"core.{a['name']}" for a in actions if a.get("runner_type", "shell") == "shell")
            assert shell, "the demo's core pack should have shell actions"
            _wait_for_log(
                container, re.escape(f"runtime shell: {len(shell)} runnable actions [{', '.join(shell)}]")
            )
        container.stop(timeout=5)
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 0, "SIGTERM should stop the service cleanly"
    finally:
        container.remove(force=True)


def test_pack_binary_runs(docker_client: Any, built: dict[str, Any]) -> None:
    out = docker_client.containers.run(built["tags"]["pack-binaries"], remove=True).decode()
    event = json.loads(out.strip().splitlines()[-1])
    assert event["trigger"] == "core.intervaltimer"
    assert event["tick"] == 0


def test_build_pack_binaries_script_places_the_sensor(docker_client: Any, demo_copy: Path) -> None:
    tag = f"attune-demo-test-{uuid.uuid4().hex[:8]}/pack-builder:script"
    try:
        proc = subprocess.run(
            ["scripts/build-pack-binaries.sh"],
            cwd=demo_copy,
            # DOCKER is left as the user has it: the script must find a BuildKit-capable CLI itself.
            env={**os.environ, "PACK_BUILDER_IMAGE": tag},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        binary = demo_copy / "packs/core/sensors/attune-core-timer-sensor"
        assert binary.is_file() and os.access(binary, os.X_OK)
        leftovers = docker_client.containers.list(all=True, filters={"ancestor": tag})
        assert leftovers == [], "the temporary container must be removed"
    finally:
        _remove_image(docker_client, tag)


def _bootstrap(workspace: Path) -> subprocess.CompletedProcess[str]:
    """Run the workspace's bootstrap-images.sh offline (never pulls), capturing its output."""
    return subprocess.run(
        ["scripts/bootstrap-images.sh"],
        cwd=workspace,
        env={**os.environ, "DOCKER": _docker_cli(), "ATTUNE_NO_PULL": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_bootstrap_second_run_is_fast_and_keeps_user_lines(docker_client: Any, demo_copy: Path) -> None:
    env_path = demo_copy / ".env"
    before = _env_file(demo_copy)
    env_path.write_text("# mine\nATTUNE_API_HOST_PORT=18123\n" + env_path.read_text())
    start = time.monotonic()
    proc = _bootstrap(demo_copy)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("present)") == 2, proc.stdout
    assert "mmdebstrap" not in proc.stdout and "pull" not in proc.stdout, proc.stdout
    assert elapsed < 10, f"images exist, so the run should skip all work (took {elapsed:.1f}s)"
    text = env_path.read_text()
    assert "# mine\nATTUNE_API_HOST_PORT=18123\n" in text
    after = _env_file(demo_copy)
    assert (after["RUST_IMAGE"], after["RUNTIME_IMAGE"]) == (before["RUST_IMAGE"], before["RUNTIME_IMAGE"])
    assert text.count("RUST_IMAGE=") == 1
    for image in (after["RUST_IMAGE"], after["RUNTIME_IMAGE"]):
        docker_client.images.get(image)

    # An image the user names in .env is kept while it exists; a missing one is replaced.
    env_path.write_text(
        f"RUST_IMAGE={after['RUNTIME_IMAGE']}\nRUNTIME_IMAGE=attune-demo-test/missing:{uuid.uuid4().hex}\n"
    )
    proc = _bootstrap(demo_copy)
    assert proc.returncode == 0, proc.stderr
    again = _env_file(demo_copy)
    assert again["RUST_IMAGE"] == after["RUNTIME_IMAGE"]
    assert again["RUNTIME_IMAGE"] == after["RUNTIME_IMAGE"]


def test_edit_with_old_mtime_rebuilds_api_and_leaves_worker_cached(
    docker_client: Any, demo_copy: Path
) -> None:
    """The seed's promise, and the trap the builder's `touch` avoids: context mtimes older than the
    dummy build must not let cargo keep the dummy (or a previous) binary."""
    env = _env_file(demo_copy)
    base = {"RUST_IMAGE": env["RUST_IMAGE"], "RUNTIME_IMAGE": env["RUNTIME_IMAGE"]}
    old = time.mktime((2001, 1, 1, 0, 0, 0, 0, 1, -1))
    for path in demo_copy.rglob("*"):
        os.utime(path, (old, old), follow_symlinks=False)
    prefix = f"attune-demo-test-{uuid.uuid4().hex[:8]}"
    api_tag, worker_tag = f"{prefix}/api:edit", f"{prefix}/worker:edit"
    marker = f"edited by test {uuid.uuid4().hex[:8]}"
    try:
        _build(demo_copy, "Dockerfile.optimized", api_tag, {**base, "SERVICE": "api"})
        _build(demo_copy, "Dockerfile.worker.optimized", worker_tag, {**base, "SERVICE": "worker"})

        main_rs = demo_copy / "crates/api/src/main.rs"
        main_rs.write_text(main_rs.read_text().replace('"attune api ready"', json.dumps(marker)))
        os.utime(main_rs, (old, old))

        api_log = _build(demo_copy, "Dockerfile.optimized", api_tag, {**base, "SERVICE": "api"})
        ran = _executed_steps(api_log)
        assert any(s.startswith("[builder") and "COPY crates/api/" in s for s in ran), ran
        assert not any(s.startswith("[planner") for s in ran), ran
        worker_log = _build(
            demo_copy, "Dockerfile.worker.optimized", worker_tag, {**base, "SERVICE": "worker"}
        )
        assert _executed_steps(worker_log) == [], "an api edit must leave every worker step cached"

        container = docker_client.containers.run(
            api_tag, detach=True, ports={"8080/tcp": ("127.0.0.1", None)}, name=f"{prefix}-api"
        )
        try:
            container.reload()
            answer = _http_get_json(int(container.ports["8080/tcp"][0]["HostPort"]))
            assert answer["message"] == marker, "the rebuilt image runs a stale binary"
        finally:
            container.remove(force=True)
    finally:
        _remove_image(docker_client, api_tag)
        _remove_image(docker_client, worker_tag)
