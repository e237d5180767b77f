#!/usr/bin/env python3
"""Bench: the console's build engine vs bare ``DOCKER_BUILDKIT=1 docker build``, same context and args.

On a private copy of demo-workspace, in one run:

* cached rebuild of ``api`` (nothing changed), ``--runs`` times each, interleaved;
* incremental rebuild of ``api`` (``crates/api/src/main.rs`` edited before every build, so the builder's
  ``COPY crates/api/`` misses and cargo recompiles), ``--runs`` times each, interleaved.

Prints the median wall times, the ratio console/bare (target: <= 1.05), and the console's own CPU
spent decoding and applying BuildKit status messages as a share of the build's wall time (target: < 2%).
Images it tags are removed at the end. Needs a running daemon and the base images of
``demo-workspace/.env`` (``demo-workspace/scripts/bootstrap-images.sh``).

    python bench/bench_build.py [--runs 5] [--docker /usr/bin/docker]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from attune_console.core.compose import load_compose  # noqa: E402
from attune_console.core.engine import BuildEngine, BuildTarget, targets_for  # noqa: E402
from attune_console.core.progress import BuildRun, RunState  # noqa: E402


def bare_argv(docker: str, t: BuildTarget, tag: str) -> list[str]:
    argv = [docker, "build", "-f", str(t.dockerfile), "-t", tag, "--progress=plain"]
    for k, v in t.args.items():
        argv += ["--build-arg", f"{k}={v}"]
    if t.target:
        argv += ["--target", t.target]
    return [*argv, str(t.context)]


def bare_build(docker: str, t: BuildTarget, tag: str) -> tuple[float, float]:
    """Wall seconds and the docker CLI's own CPU seconds for one bare build."""
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    before = os.times()
    t0 = time.perf_counter()
    proc = subprocess.run(bare_argv(docker, t, tag), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"bare docker build failed:\n{proc.stderr[-3000:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu


def console_build(engine: BuildEngine, t: BuildTarget) -> tuple[float, BuildRun]:
    t0 = time.perf_counter()
    run = asyncio.run(engine.build(t))
    wall = time.perf_counter() - t0
    if run.state is not RunState.DONE:
        raise SystemExit(
            f"console build failed: {run.error}\n" + "\n".join(t for _, t in run.last_log_lines(30))
        )
    return wall, run


def edit(main_rs: Path, original: str) -> None:
    main_rs.write_text(original + f"\n// bench edit {uuid.uuid4().hex}\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--docker", default="/usr/bin/docker", help="docker CLI with BuildKit (20.10's)")
    opts = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="attune-bench-"))
    ws = tmp / f"attune-bench-{uuid.uuid4().hex[:8]}"
    shutil.copytree(REPO / "demo-workspace", ws, ignore=lambda d, n: {"target", ".git"} & set(n))
    target = targets_for(load_compose(ws), ["api"])[0]
    bare_tag = f"{target.image}-bare".replace("_", "-").lower()
    main_rs = ws / "crates/api/src/main.rs"
    original = main_rs.read_text()
    engine = BuildEngine(concurrency=1)
    rows: list[tuple[str, list[float], list[float]]] = []
    overhead: list[float] = []
    cpu_console: list[float] = []
    cpu_bare: list[float] = []
    try:
        print(f"workspace copy: {ws}\nwarming up (first build of api, both ways)...", flush=True)
        console_build(engine, target)
        bare_build(opts.docker, target, bare_tag)

        for scenario in ("cached", "incremental"):
            c_times: list[float] = []
            b_times: list[float] = []
            for i in range(opts.runs):
                # Interleave, and alternate who goes first, so drift hits both equally.
                order = ("console", "bare") if i % 2 == 0 else ("bare", "console")
                for who in order:
                    if scenario == "incremental":
                        edit(main_rs, original)
                    if who == "console":
                        wall, run = console_build(engine, target)
                        c_times.append(wall)
                        overhead.append((run.decode_cpu_s + run.apply_cpu_s) / wall)
                        cpu_console.append(run.client_cpu_s + run.apply_cpu_s)
                        if scenario == "incremental":
                            m = run.first_missed_step
                            assert m is not None and "COPY crates/api/" in m.name, m
                        else:
                            assert run.cached == run.total, (run.cached, run.total)
                    else:
                        wall, cpu = bare_build(opts.docker, target, bare_tag)
                        b_times.append(wall)
                        cpu_bare.append(cpu)
            rows.append((scenario, c_times, b_times))
    finally:
        main_rs.write_text(original)
        import docker

        client = docker.from_env()
        for ref in (target.image, bare_tag):
            with contextlib.suppress(Exception):
                client.images.remove(ref, force=True)
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"api builds, median of {opts.runs} (wall seconds); bare = DOCKER_BUILDKIT=1 {opts.docker} build")
    print(f"{'scenario':<12} {'console':>9} {'bare':>9} {'ratio':>7}  target <= 1.05")
    ok = True
    for scenario, c, b in rows:
        mc, mb = statistics.median(c), statistics.median(b)
        ratio = mc / mb
        ok &= ratio <= 1.05
        print(f"{scenario:<12} {mc:>9.3f} {mb:>9.3f} {ratio:>7.3f}  {'ok' if ratio <= 1.05 else 'MISSED'}")
    share = statistics.median(overhead) * 100
    ok &= share < 2
    print(
        f"console decoding + model CPU: median {share:.3f}% of build wall time "
        f"(max {max(overhead) * 100:.3f}%)  target < 2%  {'ok' if share < 2 else 'MISSED'}"
    )
    print(
        "client CPU per build (console process incl. context tar: "
        f"median {statistics.median(cpu_console):.3f}s; "
        f"docker CLI: median {statistics.median(cpu_bare):.3f}s)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
