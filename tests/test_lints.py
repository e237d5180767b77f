"""Each lint fires on a workspace with the mistake (positive) and not on the fixed one (negative)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_model import COMPOSE, DOCKERFILE, load, make_workspace

from attune_console.core.errors import InputError
from attune_console.core.lint_config import load_lint_config
from attune_console.core.lints import SEVERITY, Finding, check

REPO = Path(__file__).resolve().parent.parent


def codes(root: Path) -> list[str]:
    return [f.code for f in check(load(root))]


def findings(root: Path, code: str) -> list[Finding]:
    return [f for f in check(load(root)) if f.code == code]


def df_line(text: str, dockerfile: str = DOCKERFILE) -> int:
    return dockerfile.splitlines().index(text) + 1


def test_clean_workspace_has_no_findings(tmp_path: Path) -> None:
    assert check(load(make_workspace(tmp_path))) == []


def test_demo_workspace_is_clean() -> None:
    from attune_console.core.model import Workspace

    assert check(Workspace.load(REPO / "demo-workspace", flavour=2)) == []


def test_ac100_missing_dockerfile(tmp_path: Path) -> None:
    root = make_workspace(tmp_path, compose=COMPOSE.replace("docker/Dockerfile\n", "docker/Missing\n", 1))
    [f] = findings(root, "AC100")
    assert f.file == "docker-compose.yaml" and f.line == 7 and "docker/Missing" in f.message


def test_ac101_new_crate_not_in_dockerfile(tmp_path: Path) -> None:
    root = make_workspace(
        tmp_path,
        files={"crates/newsvc/Cargo.toml": '[package]\nname = "newsvc"\n', "crates/newsvc/src/main.rs": ""},
    )
    fs = findings(root, "AC101")
    assert fs and all("crates/newsvc" in f.message for f in fs)
    assert fs[0].file == "docker/Dockerfile"
    assert fs[0].line == df_line("COPY crates/worker/Cargo.toml ./crates/worker/Cargo.toml")
    assert "COPY crates/newsvc/Cargo.toml ./crates/newsvc/Cargo.toml" in fs[0].fix


def test_ac101_negative_glob_copy_of_manifests(tmp_path: Path) -> None:
    df = DOCKERFILE.replace(
        "COPY crates/common/Cargo.toml ./crates/common/Cargo.toml\n", "COPY crates/*/Cargo.toml ./crates/\n"
    )
    root = make_workspace(tmp_path, dockerfile=df)
    assert "AC101" not in codes(root)


def test_ac101_dockerignored_manifest_is_not_copied(tmp_path: Path) -> None:
    root = make_workspace(tmp_path, files={".dockerignore": "crates/exec/Cargo.toml\n"})
    assert any("crates/exec" in f.message for f in findings(root, "AC101"))


def test_ac102_no_dummy_source(tmp_path: Path) -> None:
    df = DOCKERFILE.replace('    && echo "" > crates/exec/src/lib.rs \\\n', "")
    root = make_workspace(tmp_path, dockerfile=df)
    fs = findings(root, "AC102")
    assert fs and "crates/exec" in fs[0].message and "src/lib.rs" in fs[0].message
    assert fs[0].line == df_line(
        "RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=shared \\", df
    )
    assert "touch crates/exec/src/lib.rs" in fs[0].fix


def test_ac102_negative_real_sources_copied_before_build(tmp_path: Path) -> None:
    df = DOCKERFILE.replace('    && echo "" > crates/exec/src/lib.rs \\\n', "").replace(
        "COPY crates/worker/Cargo.toml ./crates/worker/Cargo.toml\n",
        "COPY crates/worker/Cargo.toml ./crates/worker/Cargo.toml\nCOPY crates/exec/ ./crates/exec/\n",
    )
    assert "AC102" not in codes(make_workspace(tmp_path, dockerfile=df))


def test_ac103_member_glob_matches_nothing(tmp_path: Path) -> None:
    root = make_workspace(
        tmp_path, files={"Cargo.toml": '[workspace]\nmembers = ["crates/*", "plugins/*"]\n'}
    )
    [f] = findings(root, "AC103")
    assert f.file == "Cargo.toml" and f.line == 2 and "plugins/*" in f.message


def test_ac110_path_dependency_not_copied(tmp_path: Path) -> None:
    df = DOCKERFILE.replace("COPY crates/exec/ ./crates/exec/\n", "")
    root = make_workspace(tmp_path, dockerfile=df)
    fs = findings(root, "AC110")
    assert [("worker" in f.message, "crates/exec" in f.message) for f in fs] == [(True, True)]
    assert "path dependency" in fs[0].message


def test_ac111_stale_dummy_artefacts(tmp_path: Path) -> None:
    df = DOCKERFILE.replace(
        "    find crates/common crates/exec crates/${SERVICE} -name '*.rs' -exec touch {} + \\\n    && ",
        "    ",
    )
    assert df != DOCKERFILE
    fs = findings(make_workspace(tmp_path, dockerfile=df), "AC111")
    assert {f.message.split(": real sources of ")[1].split(" ")[0] for f in fs} >= {
        "crates/common",
        "crates/api",
    }


def test_ac111_partial_touch(tmp_path: Path) -> None:
    df = DOCKERFILE.replace("find crates/common crates/exec crates/${SERVICE}", "find crates/${SERVICE}")
    fs = findings(make_workspace(tmp_path, dockerfile=df), "AC111")
    assert fs and all("crates/common" in f.message or "crates/exec" in f.message for f in fs)


def test_ac111_negative_separate_target_caches(tmp_path: Path) -> None:
    df = DOCKERFILE.replace(
        "    find crates/common crates/exec crates/${SERVICE} -name '*.rs' -exec touch {} + \\\n    && ",
        "    ",
    )
    df = df.replace("id=target-${SERVICE} \\\n    find", "id=x \\\n    find")
    parts = df.split("FROM planner AS builder")
    parts[1] = parts[1].replace("id=target-${SERVICE}", "id=final-${SERVICE}")
    assert "AC111" not in codes(make_workspace(tmp_path, dockerfile="FROM planner AS builder".join(parts)))


def test_ac120_ac121_target_cache_shared_between_services(tmp_path: Path) -> None:
    df = DOCKERFILE.replace("id=target-${SERVICE}", "sharing=locked")
    fs = check(load(make_workspace(tmp_path, dockerfile=df)))
    got = {f.code for f in fs}
    assert {"AC120", "AC121"} <= got
    ac120 = next(f for f in fs if f.code == "AC120")
    assert "api, worker" in ac120.message and "id=target-builder-${SERVICE}" in ac120.fix


def test_ac121_negative_locked_with_per_service_id(tmp_path: Path) -> None:
    df = DOCKERFILE.replace("id=target-${SERVICE}", "id=target-${SERVICE},sharing=locked")
    assert not {"AC120", "AC121"} & set(codes(make_workspace(tmp_path, dockerfile=df)))


def test_ac122_registry_not_shared(tmp_path: Path) -> None:
    df = DOCKERFILE.replace("registry,sharing=shared", "registry,sharing=locked")
    fs = findings(make_workspace(tmp_path, dockerfile=df), "AC122")
    assert fs and "/usr/local/cargo/registry" in fs[0].message


def test_ac130_broad_copy(tmp_path: Path) -> None:
    df = DOCKERFILE.replace("COPY crates/common/ ./crates/common/\n", "COPY crates/ ./crates/\n")
    [f] = findings(make_workspace(tmp_path, dockerfile=df), "AC130")
    assert f.line == df_line("COPY crates/ ./crates/", df)
    df2 = DOCKERFILE.replace("COPY crates/common/ ./crates/common/\n", "COPY . .\n")
    assert "AC130" in codes(make_workspace(tmp_path, dockerfile=df2, name="ws2"))


def test_ac140_packs_copied_into_image(tmp_path: Path) -> None:
    df = DOCKERFILE + "COPY packs/ /opt/packs/\n"
    [f] = [f for f in findings(make_workspace(tmp_path, dockerfile=df), "AC140") if "api" in f.message]
    assert "packs/" in f.message


def test_ac140_part_of_packs(tmp_path: Path) -> None:
    df = DOCKERFILE + "COPY packs/core/pack.yaml /opt/packs/core/\n"
    assert "AC140" in codes(make_workspace(tmp_path, dockerfile=df))
    df2 = DOCKERFILE + "COPY packsfoo/ /x/\n"
    assert "AC140" not in codes(make_workspace(tmp_path, dockerfile=df2, name="ws2"))


def test_ac140_copy_all_only_when_packs_not_ignored(tmp_path: Path) -> None:
    df = DOCKERFILE + "COPY . /src/\n"
    assert "AC140" not in codes(make_workspace(tmp_path, dockerfile=df))  # .dockerignore has packs/
    root = make_workspace(tmp_path, dockerfile=df, files={".dockerignore": "target/\n"}, name="ws2")
    assert "AC140" in codes(root)


def test_ac141_ac142_ac144_service_volumes(tmp_path: Path) -> None:
    compose = COMPOSE.replace("      - packs_data:/opt/packs:ro\n    depends_on:\n      init-packs:\n"
                              "        condition: service_completed_successfully\n  worker:",
                              "    depends_on: [init-packs]\n  worker:")  # fmt: skip
    compose = compose.replace("packs_data:/opt/packs:ro", "packs_data:/opt/packs")
    assert compose.count("packs_data:/opt/packs\n") == 2
    fs = check(load(make_workspace(tmp_path, compose=compose)))
    by = {(f.code, f.message.split()[1]) for f in fs}
    assert ("AC141", "api") in by
    assert ("AC142", "worker") in by
    assert ("AC144", "api") not in by  # api does not mount packs: AC141 is the finding
    compose2 = COMPOSE.replace(
        "    depends_on:\n      init-packs:\n        condition: service_completed_successfully\n  worker:",
        "    depends_on: [init-packs]\n  worker:",
    )
    fs2 = findings(make_workspace(tmp_path, compose=compose2, name="ws2"), "AC144")
    assert [f.message.split()[1] for f in fs2] == ["api"]
    assert "waits only for service_started" in fs2[0].message


def test_ac143_no_init_service(tmp_path: Path) -> None:
    compose = COMPOSE.replace("      - packs_data:/opt/packs\n", "")
    fs = findings(make_workspace(tmp_path, compose=compose), "AC143")
    assert fs and "packs_data" in fs[0].message and fs[0].file == "docker-compose.yaml"


def test_ac150_service_arg_names_no_binary(tmp_path: Path) -> None:
    root = make_workspace(tmp_path, files={".env": "API_BIN=apii\n"})
    [f] = findings(root, "AC150")
    assert f.file == "docker-compose.yaml" and f.line == 7
    assert "SERVICE='apii'" in f.message and "api" in f.fix


def test_ac150_without_bin_flag(tmp_path: Path) -> None:
    df = DOCKERFILE.replace("cargo build --release --bin ${SERVICE} &&", "cargo build --release &&")
    assert df != DOCKERFILE
    assert "AC150" not in codes(make_workspace(tmp_path, dockerfile=df))
    root = make_workspace(tmp_path, dockerfile=df, files={".env": "API_BIN=nothing\n"}, name="ws2")
    [f] = findings(root, "AC150")
    assert "SERVICE='nothing'" in f.message and f.line == 7


def test_ac151_unknown_target(tmp_path: Path) -> None:
    compose = COMPOSE.replace("        SERVICE: worker\n", "        SERVICE: worker\n      target: nope\n")
    [f] = findings(make_workspace(tmp_path, compose=compose), "AC151")
    assert "nope" in f.message and "runtime" in f.message


def test_ac160_syntax_directive_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from attune_console.core import lints

    lints._registry_reachable.cache_clear()
    monkeypatch.setenv("ATTUNE_OFFLINE", "1")
    root = make_workspace(tmp_path, dockerfile="# syntax=docker/dockerfile:1\n" + DOCKERFILE)
    [f] = findings(root, "AC160")
    assert f.line == 1
    lints._registry_reachable.cache_clear()
    monkeypatch.setenv("ATTUNE_OFFLINE", "0")
    assert "AC160" not in codes(root)
    lints._registry_reachable.cache_clear()


def test_config_silences_codes(tmp_path: Path) -> None:
    df = DOCKERFILE.replace("COPY crates/common/ ./crates/common/\n", "COPY crates/ ./crates/\n")
    root = make_workspace(
        tmp_path, dockerfile=df, files={"attune-console.toml": '[check]\nignore = ["AC13"]\n'}
    )
    assert "AC130" not in codes(root)
    (root / "attune-console.toml").write_text('[check.per-file-ignores]\n"docker/*" = ["AC130"]\n')
    assert "AC130" not in codes(root)
    (root / "attune-console.toml").write_text('[check.per-file-ignores]\n"other/*" = ["AC130"]\n')
    assert "AC130" in codes(root)


def test_config_typo_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "attune-console.toml").write_text('[check]\nignores = ["AC130"]\n')
    with pytest.raises(InputError) as info:
        load_lint_config(tmp_path)
    assert info.value.line == 2 and "ignores" in info.value.message


def test_every_code_has_a_severity() -> None:
    assert all(c.startswith("AC1") and s in ("error", "warning") for c, s in SEVERITY.items())


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "attune_console", *args], capture_output=True, text=True, check=False, cwd=cwd
    )


def test_cli_exit_codes_and_json(tmp_path: Path) -> None:
    clean = make_workspace(tmp_path)
    assert _cli("check", str(clean)).returncode == 0
    df = DOCKERFILE.replace("COPY crates/common/ ./crates/common/\n", "COPY crates/ ./crates/\n")
    dirty = make_workspace(tmp_path, dockerfile=df, name="dirty")
    proc = _cli("check", str(dirty), "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert set(data["findings"][0]) == {"code", "severity", "file", "line", "message", "fix"}
    text = _cli("check", str(dirty)).stdout
    assert text.startswith("docker/Dockerfile\n") and "AC130 warning" in text and "fix:" in text
    broken = make_workspace(tmp_path, files={"docker-compose.yaml": "services: [\n"}, name="broken")
    proc = _cli("check", str(broken))
    assert proc.returncode == 2
    assert "docker-compose.yaml:2" in proc.stderr and "Traceback" not in proc.stderr
    assert _cli("check", str(tmp_path / "nowhere")).returncode == 2
