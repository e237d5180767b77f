"""Workspace model: loading a small seed-shaped workspace and reloading one changed file at a time.

``make_workspace`` builds the small workspaces the other model tests (lints, impact, ...) use.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from attune_console.core.errors import InputError
from attune_console.core.model import PACK_BINARIES, Workspace

DOCKERFILE = """\
ARG RUST_IMAGE=rust:1
ARG RUNTIME_IMAGE=debian:bookworm-slim
FROM ${RUST_IMAGE} AS planner
ARG SERVICE
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY crates/common/Cargo.toml ./crates/common/Cargo.toml
COPY crates/api/Cargo.toml ./crates/api/Cargo.toml
COPY crates/exec/Cargo.toml ./crates/exec/Cargo.toml
COPY crates/worker/Cargo.toml ./crates/worker/Cargo.toml
RUN mkdir -p crates/common/src crates/api/src crates/exec/src crates/worker/src \\
    && echo "" > crates/common/src/lib.rs \\
    && echo "" > crates/exec/src/lib.rs \\
    && for c in api exec worker; do echo "fn main() {}" > crates/$c/src/main.rs; done
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=shared \\
    --mount=type=cache,target=/build/target,id=target-${SERVICE} \\
    cargo build --release --bin ${SERVICE}
FROM planner AS builder
ARG SERVICE
COPY crates/common/ ./crates/common/
COPY crates/exec/ ./crates/exec/
COPY crates/${SERVICE}/ ./crates/${SERVICE}/
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=shared \\
    --mount=type=cache,target=/build/target,id=target-${SERVICE} \\
    find crates/common crates/exec crates/${SERVICE} -name '*.rs' -exec touch {} + \\
    && cargo build --release --bin ${SERVICE} && cp target/release/${SERVICE} /out
FROM ${RUNTIME_IMAGE} AS runtime
ARG SERVICE
RUN mkdir -p /opt/packs
COPY --from=builder /out /usr/local/bin/app
"""

COMPOSE = """\
services:
  init-packs:
    image: debian:bookworm-slim
    volumes:
      - ./packs:/source/packs:ro
      - packs_data:/opt/packs
  api:
    build:
      context: .
      dockerfile: docker/Dockerfile
      args:
        SERVICE: ${API_BIN:-api}
    volumes:
      - packs_data:/opt/packs:ro
    depends_on:
      init-packs:
        condition: service_completed_successfully
  worker:
    build:
      context: .
      dockerfile: docker/Dockerfile
      args:
        SERVICE: worker
    volumes:
      - packs_data:/opt/packs:ro
    depends_on:
      init-packs:
        condition: service_completed_successfully
volumes:
  packs_data:
"""

FILES = {
    "Cargo.toml": '[workspace]\nmembers = ["crates/*"]\nresolver = "2"\n',
    "Cargo.lock": "version = 3\n",
    "crates/common/Cargo.toml": '[package]\nname = "common"\nversion = "0.1.0"\n',
    "crates/common/src/lib.rs": "pub fn hi() {}\n",
    "crates/common/README.md": "docs\n",
    "crates/exec/Cargo.toml": (
        '[package]\nname = "exec"\nversion = "0.1.0"\n[dependencies]\ncommon = { path = "../common" }\n'
    ),
    "crates/exec/src/lib.rs": "pub fn run() {}\n",
    "crates/exec/src/main.rs": "fn main() {}\n",
    "crates/api/Cargo.toml": (
        '[package]\nname = "api"\nversion = "0.1.0"\n[dependencies]\ncommon = { path = "../common" }\n'
    ),
    "crates/api/src/main.rs": "fn main() {}\n",
    "crates/worker/Cargo.toml": (
        '[package]\nname = "worker"\nversion = "0.1.0"\n'
        '[dependencies]\ncommon = { workspace = true }\nexec = { path = "../exec" }\n'
    ),
    "crates/worker/src/main.rs": "fn main() {}\n",
    "packs/core/pack.yaml": "name: core\n",
    ".dockerignore": "target/\n**/*.md\npacks/\n",
}


def make_workspace(
    tmp_path: Path,
    dockerfile: str = DOCKERFILE,
    compose: str = COMPOSE,
    files: dict[str, str | None] | None = None,
    name: str = "ws",
) -> Path:
    """A seed-shaped workspace: common/exec libs, api and worker bins, one optimized Dockerfile."""
    root = tmp_path / name
    merged: dict[str, str | None] = {**FILES, "docker/Dockerfile": dockerfile, "docker-compose.yaml": compose}
    merged["Cargo.toml"] = (
        FILES["Cargo.toml"] + '[workspace.dependencies]\ncommon = { path = "crates/common" }\n'
    )
    merged.update(files or {})
    for rel, text in merged.items():
        if text is None:
            continue
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text) if rel.endswith(".toml") else text)
    return root


def load(root: Path) -> Workspace:
    return Workspace.load(root, environ={}, flavour=2)


def test_load_small_workspace(tmp_path: Path) -> None:
    ws = load(make_workspace(tmp_path))
    assert set(ws.cargo.members) == {"crates/common", "crates/exec", "crates/api", "crates/worker"}
    worker = ws.cargo.members["crates/worker"]
    assert worker.path_deps == ("crates/common", "crates/exec")  # workspace = true resolved
    assert ws.cargo.members["crates/exec"].bins == ("exec",)
    assert ws.cargo.members["crates/exec"].has_lib
    assert ws.cargo.closure("crates/worker") == ["crates/worker", "crates/common", "crates/exec"]
    assert ws.cargo.lock_version == 3
    assert set(ws.builds) == {"api", "worker"}
    api = ws.builds["api"]
    assert api.plan is not None
    assert api.plan.args["SERVICE"] == "api"
    names = [s.name for s in api.plan.steps]
    assert "COPY crates/api/ ./crates/api/" in names
    assert ws.packs.volume == "packs_data"
    assert ws.packs.init_service == "init-packs"
    assert ws.packs.source_dirs == ("packs",)


def test_pack_binaries_dockerfile_found(tmp_path: Path) -> None:
    root = make_workspace(
        tmp_path, files={"docker/Dockerfile.pack-binaries": "FROM x\nCOPY crates/common/ /c/\n"}
    )
    ws = load(root)
    assert PACK_BINARIES in ws.builds
    assert PACK_BINARIES not in ws.service_builds


def test_missing_dockerfile_is_recorded_not_raised(tmp_path: Path) -> None:
    root = make_workspace(tmp_path, compose=COMPOSE.replace("docker/Dockerfile\n", "docker/Nope\n", 1))
    ws = load(root)
    assert ws.builds["api"].plan is None
    assert ws.builds["api"].problem == "Dockerfile not found"


@pytest.mark.parametrize(
    ("rel", "text", "line"),
    [
        ("Cargo.toml", "[workspace\nmembers = []\n", 1),
        ("crates/api/Cargo.toml", '[package]\nname = "api"\nversion = = 1\n', 3),
        ("docker/Dockerfile", "FROM x\nFROBNICATE y\n", 2),
        ("docker-compose.yaml", "services:\n  a: [\n", 3),
    ],
)
def test_malformed_input_names_file_and_line(tmp_path: Path, rel: str, text: str, line: int) -> None:
    root = make_workspace(tmp_path, files={rel: text})
    with pytest.raises(InputError) as info:
        load(root)
    assert info.value.file is not None and Path(info.value.file).name == Path(rel).name
    assert info.value.line == line


def test_reload_member_manifest_only_rereads_that_crate(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    ws = load(root)
    common_before = ws.cargo.members["crates/common"]
    api_plan = ws.builds["api"].plan
    (root / "crates/api/Cargo.toml").write_text('[package]\nname = "api2"\nversion = "0.1.0"\n')
    redo = ws.reload([root / "crates/api/Cargo.toml"])
    assert redo == {"crate"}
    assert ws.cargo.members["crates/api"].name == "api2"
    assert ws.cargo.members["crates/api"].path_deps == ()
    assert ws.cargo.members["crates/common"] is common_before
    assert ws.builds["api"].plan is api_plan  # Dockerfiles untouched


def test_reload_root_manifest_reuses_unchanged_members(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    ws = load(root)
    common_before = ws.cargo.members["crates/common"]
    (root / "crates/extra/src").mkdir(parents=True)
    (root / "crates/extra/Cargo.toml").write_text('[package]\nname = "extra"\nversion = "0.1.0"\n')
    (root / "crates/extra/src/main.rs").write_text("fn main() {}\n")
    assert ws.reload(["Cargo.toml"]) == {"cargo"}
    assert "crates/extra" in ws.cargo.members
    assert ws.cargo.members["crates/common"] is common_before


def test_reload_new_member_manifest_under_glob(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    ws = load(root)
    (root / "crates/extra/src").mkdir(parents=True)
    (root / "crates/extra/src/lib.rs").write_text("")
    (root / "crates/extra/Cargo.toml").write_text('[package]\nname = "extra"\nversion = "0.1.0"\n')
    assert "cargo" in ws.reload([root / "crates/extra/Cargo.toml"])
    assert ws.cargo.members["crates/extra"].has_lib


def test_reload_dockerfile_replans_its_services(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    ws = load(root)
    gen = ws.generation
    (root / "docker/Dockerfile").write_text(
        DOCKERFILE.replace("RUN mkdir -p /opt/packs", "RUN mkdir -p /opt/p")
    )
    assert ws.reload(["docker/Dockerfile"]) == {"dockerfile"}
    assert ws.generation == gen + 1
    api = ws.builds["api"].plan
    assert api is not None
    assert any(s.name == "RUN mkdir -p /opt/p" for s in api.steps)


def test_reload_compose_and_env(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    ws = load(root)
    (root / ".env").write_text("API_BIN=exec\n")
    assert ws.reload([root / ".env"]) == {"compose"}
    assert ws.builds["api"].args["SERVICE"] == "exec"


def test_reload_source_file_changes_nothing(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    ws = load(root)
    (root / "crates/api/src/main.rs").write_text("fn main() { println!(); }\n")
    assert ws.reload(["crates/api/src/main.rs", "/elsewhere/file"]) == set()
    assert ws.generation == 0


def test_reload_new_bin_file_updates_bins(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    ws = load(root)
    (root / "crates/api/src/bin").mkdir()
    (root / "crates/api/src/bin/tool.rs").write_text("fn main() {}\n")
    assert ws.reload(["crates/api/src/bin/tool.rs"]) == {"crate"}
    assert "tool" in ws.cargo.members["crates/api"].bins


def test_member_glob_matching_nothing_is_a_problem(tmp_path: Path) -> None:
    root = make_workspace(tmp_path, files={"Cargo.toml": '[workspace]\nmembers = ["crates/*", "tools/*"]\n'})
    ws = load(root)
    kinds = [(p.kind, p.line) for p in ws.cargo.problems]
    assert kinds == [("glob-empty", 2)]


def test_symlinked_member_outside_workspace_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "src").mkdir(parents=True)
    (outside / "Cargo.toml").write_text('[package]\nname = "evil"\nversion = "0.1.0"\n')
    root = make_workspace(tmp_path)
    os.symlink(outside, root / "crates" / "evil")
    ws = load(root)
    assert "crates/evil" not in ws.cargo.members


def test_demo_workspace_loads() -> None:
    demo = Path(__file__).resolve().parent.parent / "demo-workspace"
    ws = Workspace.load(demo, flavour=2)
    assert {"api", "executor", "worker-shell", "sensor", "notifier"} <= set(ws.service_builds)
    assert all(b.plan is not None for b in ws.builds.values())
    assert ws.cargo.bin_owner("attune-worker") is not None
