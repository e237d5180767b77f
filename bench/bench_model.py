"""Bench: load, impact and incremental reload of a generated 300-crate, 40-service workspace.

Run: ``python bench/bench_model.py [--crates 300] [--services 40] [--paths 10000]``.
Prints measured figures and their ratio against a bare baseline measured in the same run:
  load    vs  parsing every Cargo.toml with tomllib and reading the Dockerfile (the I/O floor)
  impact  vs  one dict lookup per changed path (the cheapest possible path -> service map)
  reload  vs  parsing the one edited manifest with tomllib
Targets (issue 3): load < 0.5 s, impact < 50 ms for 10,000 paths, reload < 20 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import tomllib

from attune_console.core.fingerprint import fingerprints
from attune_console.core.impact import impact
from attune_console.core.lints import check
from attune_console.core.model import Workspace


def generate(root: Path, n_crates: int, n_services: int) -> list[str]:
    """Write the workspace; returns every source file path (workspace-relative)."""
    crates = [f"c{i:03d}" for i in range(n_crates)]
    services = crates[1 : n_services + 1]
    (root / "Cargo.toml").write_text('[workspace]\nmembers = ["crates/*"]\nresolver = "2"\n')
    (root / "Cargo.lock").write_text("version = 3\n")
    (root / ".dockerignore").write_text("target/\n**/*.md\npacks/\n")
    files: list[str] = []
    for i, c in enumerate(crates):
        d = root / "crates" / c
        (d / "src").mkdir(parents=True)
        deps = '[dependencies]\nc000 = { path = "../c000" }\n' if i else ""
        (d / "Cargo.toml").write_text(f'[package]\nname = "{c}"\nversion = "0.1.0"\n{deps}')
        main = "lib.rs" if i == 0 or c not in services else "main.rs"
        for f in (main, "a.rs", "b.rs", "c.rs", "README.md"):
            (d / "src" / f).write_text(f"// {c}/{f}\n")
            files.append(f"crates/{c}/src/{f}")
    manifests = "".join(f"COPY crates/{c}/Cargo.toml ./crates/{c}/Cargo.toml\n" for c in crates)
    libs = " ".join(c for c in crates if c not in services)
    dockerfile = (
        "ARG RUST_IMAGE=rust:1\nFROM ${RUST_IMAGE} AS planner\nARG SERVICE\nWORKDIR /build\n"
        "COPY Cargo.toml Cargo.lock ./\n" + manifests + f"RUN for c in {libs}; do mkdir -p crates/$c/src && "
        "touch crates/$c/src/lib.rs; done && for c in "
        + " ".join(services)
        + "; do mkdir -p crates/$c/src && "
        "echo 'fn main() {}' > crates/$c/src/main.rs; done\n"
        "RUN --mount=type=cache,target=/build/target,id=target-${SERVICE} "
        "cargo build --release --bin ${SERVICE}\n"
        "FROM planner AS builder\nARG SERVICE\nCOPY crates/c000/ ./crates/c000/\n"
        "COPY crates/${SERVICE}/ ./crates/${SERVICE}/\n"
        "RUN --mount=type=cache,target=/build/target,id=target-${SERVICE} "
        "find crates/c000 crates/${SERVICE} -name '*.rs' -exec touch {} + "
        "&& cargo build --release --bin ${SERVICE}\n"
        "FROM debian AS runtime\nARG SERVICE\nCOPY --from=builder /build/target/release/${SERVICE} /app\n"
    )
    (root / "docker").mkdir()
    (root / "docker" / "Dockerfile").write_text(dockerfile)
    compose = ["services:"]
    compose.append("  init-packs:\n    image: debian\n    volumes:")
    compose.append("      - ./packs:/src:ro\n      - packs_data:/opt/packs")
    for s in services:
        compose.append(
            f"  {s}:\n    build:\n      context: .\n      dockerfile: docker/Dockerfile\n      args:\n"
            f"        SERVICE: {s}\n    volumes:\n      - packs_data:/opt/packs:ro\n    depends_on:\n"
            "      init-packs:\n        condition: service_completed_successfully"
        )
    compose.append("volumes:\n  packs_data:\n")
    (root / "docker-compose.yaml").write_text("\n".join(compose))
    (root / "packs" / "core").mkdir(parents=True)
    (root / "packs" / "core" / "pack.yaml").write_text("name: core\n")
    return files


def best(fn: Callable[[], object], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crates", type=int, default=300)
    ap.add_argument("--services", type=int, default=40)
    ap.add_argument("--paths", type=int, default=10_000)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="attune-bench-") as tmp:
        root = Path(tmp) / "ws"
        root.mkdir()
        files = generate(root, opts.crates, opts.services)
        manifests = sorted(root.glob("crates/*/Cargo.toml"))

        def bare_load() -> None:
            for m in manifests:
                tomllib.loads(m.read_text())
            (root / "docker" / "Dockerfile").read_text()

        base_load = best(bare_load)
        t_load = best(lambda: Workspace.load(root, environ={}, flavour=2), repeat=5)
        ws = Workspace.load(root, environ={}, flavour=2)
        n_steps = sum(len(b.plan.steps) for b in ws.builds.values() if b.plan)

        rng = random.Random(7)
        extra = [f"crates/c{rng.randrange(opts.crates):03d}/src/gen{i}.rs" for i in range(opts.paths)]
        paths = (files + extra)[: opts.paths] if len(files) < opts.paths else rng.sample(files, opts.paths)
        paths = (paths + extra)[: opts.paths]
        lookup = {f"crates/c{i:03d}": i for i in range(opts.crates)}
        base_impact = best(lambda: [lookup.get(p.rsplit("/", 2)[0]) for p in paths])
        impact(ws, paths)  # builds the index once (it is kept until the model changes)
        t_impact = best(lambda: impact(ws, paths))
        one = impact(ws, ["crates/c005/src/a.rs"])
        rebuilt = [s.service for s in one.services if s.rebuild]

        manifest = root / "crates" / "c123" / "Cargo.toml"
        base_reload = best(lambda: tomllib.loads(manifest.read_text()))
        reloads = []
        for i in range(15):
            manifest.write_text(f'[package]\nname = "c123"\nversion = "0.1.{i}"\n')
            t0 = time.perf_counter()
            ws.reload([manifest])
            reloads.append(time.perf_counter() - t0)
        t_reload = min(reloads)
        root_reloads = []
        for i in range(5):
            (root / "Cargo.toml").write_text(f'[workspace]\nmembers = ["crates/*"]\nresolver = "2"\n# {i}\n')
            t0 = time.perf_counter()
            ws.reload([root / "Cargo.toml"])
            root_reloads.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        n_findings = len(check(ws))
        t_check = time.perf_counter() - t0

        t0 = time.perf_counter()
        fingerprints(ws)
        t_fp_cold = time.perf_counter() - t0
        t_fp_warm = best(lambda: fingerprints(ws), repeat=3)

    ms = 1000.0
    lines = [
        f"workspace: {opts.crates} crates, {opts.services} services, {len(files)} source files, "
        f"{n_steps} resolved steps",
        f"load:    {t_load * ms:8.1f} ms  (bare tomllib+read {base_load * ms:.1f} ms, "
        f"x{t_load / base_load:.1f})  target < 500 ms",
        f"impact:  {t_impact * ms:8.1f} ms  for {len(paths)} paths "
        f"(bare dict lookups {base_impact * ms:.2f} ms, x{t_impact / base_impact:.1f})  target < 50 ms",
        f"         one-file impact rebuilds {rebuilt}",
        f"reload:  {t_reload * ms:8.2f} ms  member manifest edit, "
        f"median {statistics.median(reloads) * ms:.2f} ms "
        f"(bare tomllib {base_reload * ms:.3f} ms, x{t_reload / base_reload:.1f})  target < 20 ms",
        f"         root manifest edit: {min(root_reloads) * ms:.1f} ms (members re-used by size+mtime)",
        f"check:   {t_check * ms:8.1f} ms  ({n_findings} findings)",
        f"fingerprints (all {len(ws.builds)} builds): cold {t_fp_cold * ms:.1f} ms, "
        f"warm {t_fp_warm * ms:.1f} ms",
    ]
    print("\n".join(lines))
    ok = t_load < 0.5 and t_impact < 0.05 and t_reload < 0.02
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
