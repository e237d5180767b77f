"""Impact rules (path-based) and step fingerprints, over small workspaces and the demo workspace."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import missing
from test_model import COMPOSE, DOCKERFILE, load, make_workspace

from attune_console.core.fingerprint import (
    ServiceFingerprint,
    fingerprint,
    fingerprints,
    first_miss,
    known_keys,
)
from attune_console.core.impact import build_index, impact, impact_and_reload
from attune_console.core.model import PACK_BINARIES, Workspace

REPO = Path(__file__).resolve().parent.parent


def line(text: str) -> int:
    """1-based line of ``text`` in the test Dockerfile."""
    return DOCKERFILE.splitlines().index(text) + 1


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return load(make_workspace(tmp_path))


def test_service_source_change_rebuilds_only_that_service(ws: Workspace) -> None:
    r = impact(ws, ["crates/api/src/main.rs"])
    api = r.service("api")
    assert api.rebuild
    assert api.stage == "builder"
    assert api.instruction == "COPY crates/api/ ./crates/api/"
    assert api.display == "builder: COPY crates/api/ ./crates/api/"
    assert api.file == "docker/Dockerfile" and api.line == line(
        "COPY crates/${SERVICE}/ ./crates/${SERVICE}/"
    )
    assert api.reason == "crates/api/src/main.rs"
    assert not r.service("worker").rebuild
    assert not r.service("init-packs").rebuild
    assert not r.packs_refresh and not r.pack_binaries


def test_shared_crate_change_rebuilds_every_service(ws: Workspace) -> None:
    r = impact(ws, [ws.root / "crates/common/src/lib.rs"])  # absolute paths work too
    for name in ("api", "worker"):
        s = r.service(name)
        assert s.rebuild and s.instruction == "COPY crates/common/ ./crates/common/", name


def test_manifest_and_lock_changes_hit_the_planner(ws: Workspace) -> None:
    lock = line("COPY Cargo.toml Cargo.lock ./")
    worker = line("COPY crates/worker/Cargo.toml ./crates/worker/Cargo.toml")
    for path, at in (("Cargo.toml", lock), ("Cargo.lock", lock), ("crates/worker/Cargo.toml", worker)):
        r = impact(ws, [path])
        for name in ("api", "worker"):
            s = r.service(name)
            assert s.rebuild and s.stage == "planner" and s.line == at, (path, name)


def test_dockerignored_and_uncopied_files_affect_nothing(ws: Workspace) -> None:
    (ws.root / "docs").mkdir()
    r = impact(ws, ["crates/common/README.md", "docs/guide.txt", "README.md", "target/release/x"])
    assert not any(s.rebuild for s in r.services)


def test_packs_change_refreshes_volume_without_rebuild(ws: Workspace) -> None:
    r = impact(ws, ["packs/core/pack.yaml"])
    assert r.packs_refresh and r.packs_reason == "packs/core/pack.yaml"
    assert not any(s.rebuild for s in r.services)


def test_pack_binaries_source_change(tmp_path: Path) -> None:
    root = make_workspace(
        tmp_path,
        files={
            "docker/Dockerfile.pack-binaries": "FROM x AS b\nWORKDIR /b\nCOPY crates/exec/ ./crates/exec/\n"
        },
    )
    w = load(root)
    r = impact(w, ["crates/exec/src/main.rs"])
    assert r.pack_binaries
    assert r.pack_binaries_step is not None and r.pack_binaries_step.line == 3
    assert not impact(w, ["crates/api/src/main.rs"]).pack_binaries
    assert PACK_BINARIES not in [s.service for s in r.services]


def test_interpolated_build_arg_decides_what_is_copied(tmp_path: Path) -> None:
    root = make_workspace(tmp_path, files={".env": "API_BIN=exec\n"})
    w = load(root)
    assert w.builds["api"].args["SERVICE"] == "exec"
    assert impact(w, ["crates/exec/src/main.rs"]).service("api").rebuild
    assert not impact(w, ["crates/api/src/main.rs"]).service("api").rebuild


def test_glob_sources(tmp_path: Path) -> None:
    df = "FROM x\nCOPY crates/*/Cargo.toml /m/\nRUN build\n"
    w = load(make_workspace(tmp_path, dockerfile=df))
    assert impact(w, ["crates/api/Cargo.toml"]).service("api").line == 2
    assert not impact(w, ["crates/api/src/main.rs"]).service("api").rebuild


def test_copy_from_dirty_stage_propagates(tmp_path: Path) -> None:
    df = "FROM x AS a\nCOPY crates/api/ /a/\nFROM y AS b\nRUN true\nCOPY --from=a /a /a\n"
    w = load(make_workspace(tmp_path, dockerfile=df))
    s = impact(w, ["crates/api/src/main.rs"]).service("api")
    assert s.stage == "a" and s.line == 2


def test_dockerfile_edit_is_diffed_against_the_model(ws: Workspace) -> None:
    path = ws.root / "docker/Dockerfile"
    path.write_text(DOCKERFILE.replace("RUN mkdir -p /opt/packs", "RUN mkdir -p /opt/packs /opt/logs"))
    r = impact_and_reload(ws, [path])
    for name in ("api", "worker"):
        s = r.service(name)
        assert s.rebuild and s.stage == "runtime" and s.line == line("RUN mkdir -p /opt/packs"), name
        assert s.reason == "docker/Dockerfile changed this step"
    # the model now holds the edit: the same path predicts nothing more
    assert not impact(ws, [path]).service("api").rebuild


def test_compose_arg_edit_rebuilds_from_first_arg_dependent_step(ws: Workspace) -> None:
    (ws.root / "docker-compose.yaml").write_text(COMPOSE.replace("SERVICE: worker", "SERVICE: exec"))
    r = impact(ws, ["docker-compose.yaml"])
    w = r.service("worker")
    assert (
        w.rebuild and w.stage == "planner" and w.instruction is not None and w.instruction.startswith("RUN")
    )
    assert not r.service("api").rebuild


def test_dockerignore_edit_is_conservative(ws: Workspace) -> None:
    r = impact(ws, [".dockerignore"])
    assert r.service("api").rebuild and r.service("api").stage == "planner"


def test_index_is_rebuilt_after_reload(ws: Workspace) -> None:
    first = build_index(ws)
    (ws.root / "docker/Dockerfile").write_text(DOCKERFILE.replace("COPY crates/exec/ ./crates/exec/\n", ""))
    ws.reload(["docker/Dockerfile"])
    assert build_index(ws).generation != first.generation
    assert not impact(ws, ["crates/exec/src/lib.rs"]).service("api").rebuild


def test_json_shape(ws: Workspace) -> None:
    data = impact(ws, ["crates/api/src/main.rs"]).to_json()
    assert set(data) == {"services", "packs_refresh", "pack_binaries"}
    assert set(data["services"][0]) == {
        "service",
        "rebuild",
        "stage",
        "instruction",
        "file",
        "line",
        "reason",
    }  # type: ignore[index]


# --- fingerprints -----------------------------------------------------------------------------


def test_fingerprint_rules(ws: Workspace) -> None:
    """touch: nothing; chmod: the COPY holding it; edit: its COPY; manifest: planner for everyone."""
    before = fingerprints(ws)
    src = ws.root / "crates/api/src/main.rs"
    os.utime(src, ns=(1, 1))
    after = fingerprints(ws)
    assert all(first_miss(before[n], after[n]) is None for n in before)
    src.chmod(0o755)
    m = first_miss(before["api"], fingerprint(ws, "api"))
    assert m is not None and m.instruction == "COPY crates/api/ ./crates/api/"
    assert first_miss(before["worker"], fingerprint(ws, "worker")) is None
    src.chmod(0o644)
    (ws.root / "crates/api/README.md").write_text("ignored by .dockerignore")
    assert first_miss(before["api"], fingerprint(ws, "api")) is None
    (ws.root / "Cargo.lock").write_text("version = 3\n# changed\n")
    now = fingerprints(ws)
    for n in ("api", "worker"):
        m = first_miss(before[n], now[n])
        assert m is not None and m.stage == "planner" and m.instruction == "COPY Cargo.toml Cargo.lock ./", n


def test_shared_steps_through_cached_keys(ws: Workspace) -> None:
    """After a manifest edit and a rebuild of api only, worker's planner COPYs are cached already."""
    before = fingerprints(ws)
    (ws.root / "Cargo.lock").write_text("version = 3\n# changed\n")
    now = fingerprints(ws)
    api_built = known_keys([now["api"], None])
    assert api_built == now["api"].keys()
    m = first_miss(before["worker"], now["worker"], cached_keys=api_built)
    assert m is not None
    assert m.stage == "planner" and m.instruction.startswith("RUN mkdir")
    assert m.arg_dependent
    copies = [s for s in now["worker"].steps if s.stage == "planner" and s.instruction.startswith("COPY")]
    assert copies and not any(s.arg_dependent for s in copies)
    assert all(s.key in api_built for s in copies)


def test_fingerprint_json_roundtrip(ws: Workspace) -> None:
    fp = fingerprint(ws, "api")
    again = ServiceFingerprint.from_json(fp.to_json())
    assert again == fp
    assert json.loads(fp.to_json())["steps"][0]["stage"] == "planner"
    assert first_miss(None, fp) is not None
    assert first_miss(None, fp, cached_keys=fp.keys()) is None


def test_fingerprint_base_image_ids(ws: Workspace) -> None:
    a = fingerprint(ws, "api", base_ids={"rust:1": "sha256:aaa"})
    b = fingerprint(ws, "api", base_ids={"rust:1": "sha256:bbb"})
    m = first_miss(a, b)
    assert m is not None and m.instruction.startswith("FROM")


def test_fingerprint_cache_reused(ws: Workspace) -> None:
    fingerprints(ws)
    assert any(k.endswith("crates/api/src/main.rs") for k in ws.file_digests)


# --- the demo workspace and the CLI -------------------------------------------------------------


def test_demo_impact_matches_measured_rules() -> None:
    demo = Workspace.load(REPO / "demo-workspace", flavour=2)
    r = impact(demo, ["crates/api/src/main.rs"])
    assert r.service("api").display == "builder: COPY crates/api/ ./crates/api/"
    assert not r.service("worker-shell").rebuild
    r = impact(demo, ["crates/common/src/lib.rs"])
    assert all(s.display == "builder: COPY crates/common/ ./crates/common/" for s in r.services if s.rebuild)
    assert sum(s.rebuild for s in r.services) == len(demo.service_builds)
    r = impact(demo, ["Cargo.toml"])
    assert all(s.display == "planner: COPY Cargo.toml Cargo.lock ./" for s in r.services if s.rebuild)
    r = impact(demo, ["crates/executor/src/lib.rs"])
    assert (
        r.service("worker-shell").rebuild and r.service("executor").rebuild and not r.service("api").rebuild
    )


def test_cli_json(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "attune_console",
            "impact",
            "-w",
            str(root),
            "crates/api/src/main.rs",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    api = next(s for s in data["services"] if s["service"] == "api")
    assert api["rebuild"] and api["line"] == line("COPY crates/${SERVICE}/ ./crates/${SERVICE}/")
    proc = subprocess.run(
        [sys.executable, "-m", "attune_console", "impact", "-w", str(root), "/etc/hostname"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "not inside the workspace" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- predictions against real BuildKit ----------------------------------------------------------

BK_DOCKERFILE = """\
ARG BASE=debian:bookworm-slim
FROM ${BASE} AS planner
ARG SERVICE
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY crates/common/Cargo.toml ./crates/common/Cargo.toml
COPY crates/api/Cargo.toml ./crates/api/Cargo.toml
COPY crates/worker/Cargo.toml ./crates/worker/Cargo.toml
RUN cat Cargo.toml crates/*/Cargo.toml > /planned
FROM planner AS builder
ARG SERVICE
COPY crates/common/ ./crates/common/
COPY crates/${SERVICE}/ ./crates/${SERVICE}/
RUN ls -lR crates > /listing
"""


def _base_image(docker_client: object) -> str:
    """The runtime base image bootstrap-images.sh made (never pulled)."""
    env = {}
    for raw in (REPO / "demo-workspace" / ".env").read_text().splitlines():
        k, _, v = raw.partition("=")
        env[k.strip()] = v.strip()
    image = env.get("RUNTIME_IMAGE", "debian:bookworm-slim")
    try:
        docker_client.images.get(image)  # type: ignore[attr-defined]
    except Exception as exc:
        missing(f"base image {image} missing ({exc}); run demo-workspace/scripts/bootstrap-images.sh")
    return image


@pytest.mark.docker
def test_fingerprint_first_miss_matches_buildkit(tmp_path: Path, docker_client: object) -> None:
    """Change files, predict with fingerprints, build with BuildKit, compare the first missed step.

    Covers the measured rules: touch -> all cached; chmod -> the COPY holding the file; a service
    source -> its builder COPY; a manifest -> the planner COPY, and for a second service after
    the first one's rebuild (shared cache) -> its first ARG-keyed RUN; a .dockerignored file -> nothing.
    """
    import asyncio
    import uuid

    from attune_console.core.docker_conn import DockerConnection
    from attune_console.core.engine import BuildEngine, BuildTarget

    base = _base_image(docker_client)
    tag = f"attune-fp-test-{uuid.uuid4().hex[:8]}"
    root = make_workspace(tmp_path, dockerfile=BK_DOCKERFILE, name=tag)
    # unique content so earlier runs on this daemon cannot have cached any of it
    (root / "Cargo.lock").write_text(f"version = 3\n# {tag}\n")
    compose = COMPOSE.replace("SERVICE: ${API_BIN:-api}", f"SERVICE: api\n        BASE: {base}").replace(
        "SERVICE: worker", f"SERVICE: worker\n        BASE: {base}"
    )
    (root / "docker-compose.yaml").write_text(compose)
    engine = BuildEngine(DockerConnection(), concurrency=1)
    images: list[str] = []

    def build(service: str):  # type: ignore[no-untyped-def]
        w = load(root)
        b = w.builds[service]
        target = BuildTarget(service, f"{tag}-{service}", b.context, b.dockerfile, dict(b.args), None)
        run = asyncio.run(engine.build(target))
        assert run.state.value == "done", (run.error, run.last_log_lines(10))
        if run.image_id:
            images.append(run.image_id)
        return run, fingerprint(w, service)

    def actual(run) -> tuple[str, str] | None:  # type: ignore[no-untyped-def]
        m = run.first_missed_step
        return None if m is None else (m.stage, m.instruction)

    def predicted(
        old: ServiceFingerprint, service: str, cached: set[str] | None = None
    ) -> tuple[str, str] | None:
        m = first_miss(old, fingerprint(load(root), service), cached or set())
        return None if m is None else (m.stage, m.instruction)

    try:
        _, fp_api = build("api")
        _, fp_worker = build("worker")

        os.utime(root / "crates/api/src/main.rs", ns=(10**9, 10**9))
        assert predicted(fp_api, "api") is None
        run, fp_api = build("api")
        assert actual(run) is None

        (root / "crates/api/src/main.rs").chmod(0o755)
        expect = ("builder", "COPY crates/api/ ./crates/api/")
        assert predicted(fp_api, "api") == expect
        run, fp_api = build("api")
        assert actual(run) == expect

        (root / "crates/common/README.md").write_text("dockerignored\n")
        assert predicted(fp_api, "api") is None

        with (root / "Cargo.toml").open("a") as fh:
            fh.write(f"# {tag} edit\n")
        expect = ("planner", "COPY Cargo.toml Cargo.lock ./")
        assert predicted(fp_api, "api") == expect
        assert predicted(fp_worker, "worker") == expect  # before api's rebuild
        run, fp_api = build("api")
        assert actual(run) == expect
        shared = predicted(fp_worker, "worker", fp_api.keys())
        assert shared == ("planner", "RUN cat Cargo.toml crates/*/Cargo.toml > /planned")
        run, fp_worker = build("worker")
        assert actual(run) == shared
    finally:
        for ref in [f"{tag}-api", f"{tag}-worker", *images]:
            with contextlib.suppress(Exception):
                docker_client.images.remove(ref, force=True)  # type: ignore[attr-defined]


def test_context_in_a_subdirectory(tmp_path: Path) -> None:
    compose = (
        "services:\n  web:\n    build:\n      context: ./web\n      dockerfile: Dockerfile\n"
        "  api:\n    build:\n      context: .\n      dockerfile: docker/Dockerfile\n      args:\n"
        "        SERVICE: api\n"
    )
    files = {
        "web/Dockerfile": "FROM x\nCOPY src/ /app/src/\nCOPY README.md /\n",
        "web/src/index.js": "1\n",
        "web/.dockerignore": "*.md\n",
    }
    w = load(make_workspace(tmp_path, compose=compose, files=files))
    r = impact(w, ["web/src/index.js"])
    assert r.service("web").rebuild and r.service("web").line == 2
    assert not r.service("api").rebuild
    assert not impact(w, ["web/README.md"]).service("web").rebuild  # web/.dockerignore
    assert not impact(w, ["src/index.js"]).service("web").rebuild  # not under the context
    before = fingerprint(w, "web")
    (w.root / "web/src/index.js").write_text("2\n")
    m = first_miss(before, fingerprint(w, "web"))
    assert m is not None and m.instruction == "COPY src/ /app/src/"


def test_dockerignore_reload_changes_predictions(ws: Workspace) -> None:
    assert not impact(ws, ["crates/common/README.md"]).service("api").rebuild
    (ws.root / ".dockerignore").write_text("target/\npacks/\n")
    ws.reload([".dockerignore"])
    assert impact(ws, ["crates/common/README.md"]).service("api").rebuild
