"""Bench: packs status and one-file refresh against a full init-packs-style copy.

Generates a packs tree of 5,000 files / 50 MB (10 packs, 1 in 20 files executable) in a
temporary workspace whose compose file has the demo's init-packs service, then measures
on the local daemon, in one run:

- baseline: the full copy init-packs does (``find -delete && cp -a`` in a container from
  the runtime image, mounting ./packs and the volume), container create to removal;
- the same through the compose CLI (``run --rm init-packs``), what a user types;
- ``status`` with nothing changed: one-shot (a new helper container, as the CLI does)
  and in an open session (as the console does);
- a refresh of one changed file: one-shot, in an open session with a full scan of ./packs,
  and in an open session given the changed path (what the console's file watcher hands over).

Prints medians and ratios against the baselines. Needs RUNTIME_IMAGE (default: the
demo's .env) on the daemon; creates one volume and removes it at the end.

    python bench/bench_packs.py [--files 5000] [--mb 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker

from attune_console.core.compose import load_compose, read_dotenv
from attune_console.core.compose_cli import detect
from attune_console.core.packs import PacksSession

REPO = Path(__file__).resolve().parent.parent

COMPOSE = """\
services:
  init-packs:
    image: ${RUNTIME_IMAGE}
    volumes:
      - ./packs:/source/packs:ro
      - packs_data:/opt/attune/packs
    command:
      - sh
      - -c
      - find /opt/attune/packs -mindepth 1 -delete && cp -a /source/packs/. /opt/attune/packs/
    restart: "no"
  api:
    image: ${RUNTIME_IMAGE}
    command: ["sleep", "600"]
    volumes:
      - packs_data:/opt/attune/packs:ro
volumes:
  packs_data:
"""

INIT_PACKS_CMD = "find /opt/attune/packs -mindepth 1 -delete && cp -a /source/packs/. /opt/attune/packs/"


def generate(packs: Path, files: int, total_mb: int) -> list[Path]:
    size = total_mb * 1024 * 1024 // files
    out = []
    rnd = os.urandom(size + 4096)
    for i in range(files):
        d = packs / f"pack{i % 10:02d}" / ("sensors" if i % 20 == 0 else "actions") / f"group{i % 37:02d}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"file{i:05d}.yaml"
        off = i % 4096
        p.write_bytes(rnd[off : off + size])
        if i % 20 == 0:
            p.chmod(0o755)
        out.append(p)
    return out


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    opts = ap.parse_args()

    env = read_dotenv(REPO / "demo-workspace" / ".env")
    runtime = os.environ.get("RUNTIME_IMAGE") or env.get("RUNTIME_IMAGE") or "debian:bookworm-slim"
    client = docker.from_env(timeout=300)
    client.images.get(runtime)  # never pull: fail here if it is missing

    with tempfile.TemporaryDirectory(prefix="attune-bench-") as tmp:
        os.environ["ATTUNE_CONSOLE_STATE_DIR"] = str(Path(tmp) / "state")  # recorded hashes: private
        root = Path(tmp) / f"bench-{uuid.uuid4().hex[:8]}"
        root.mkdir()
        (root / "docker-compose.yaml").write_text(COMPOSE)
        (root / ".env").write_text(f"RUNTIME_IMAGE={runtime}\n")
        t = time.perf_counter()
        files = generate(root / "packs", opts.files, opts.mb)
        print(f"generated {len(files)} files, {opts.mb} MB in {time.perf_counter() - t:.1f}s")
        project = load_compose(root)
        volume = project.volumes["packs_data"]
        client.volumes.create(
            volume,
            labels={"com.docker.compose.project": project.name, "com.docker.compose.volume": "packs_data"},
        )
        try:
            mounts = {
                str(root / "packs"): {"bind": "/source/packs", "mode": "ro"},
                volume: {"bind": "/opt/attune/packs", "mode": "rw"},
            }

            def full_copy() -> None:
                c = client.containers.create(runtime, ["sh", "-c", INIT_PACKS_CMD], volumes=mounts)
                try:
                    c.start()
                    code = c.wait()["StatusCode"]
                    if code != 0:
                        raise SystemExit(f"init-packs copy failed: exit {code}")
                finally:
                    c.remove(force=True)

            base = timed(full_copy, opts.repeat)
            print(f"full copy as init-packs does it (container + cp -a):     {base:7.3f} s")

            cli = detect()
            base_cli = None
            if cli is not None:
                argv = [
                    *cli.argv,
                    "--project-directory",
                    str(root),
                    "-p",
                    project.name,
                    "run",
                    "--rm",
                    "init-packs",
                ]

                def compose_copy() -> None:
                    subprocess.run(argv, cwd=root, check=True, capture_output=True)

                base_cli = timed(compose_copy, min(opts.repeat, 3))
                print(f"full copy via '{' '.join(cli.argv)} run --rm init-packs':  {base_cli:7.3f} s")

            def oneshot_status() -> None:
                with PacksSession(client, project) as s:
                    st = s.status()
                    assert st.in_sync, "volume should match after the copy"

            # First status after init-packs' copy: no recorded hashes match, the volume is hashed.
            st_cold = timed(oneshot_status, 1)
            print(f"status after a full copy (volume hashed), one-shot:      {st_cold:7.3f} s")
            st_one = timed(oneshot_status, opts.repeat)
            print(f"status, nothing changed, one-shot helper (CLI):          {st_one:7.3f} s")

            with PacksSession(client, project) as session:
                session.status()
                st_warm = timed(lambda: session.status(), opts.repeat)
                print(f"status, nothing changed, open session:                   {st_warm:7.3f} s")

                target = files[len(files) // 2]
                counter = [0]

                def touch_one() -> None:
                    counter[0] += 1
                    target.write_bytes(target.read_bytes()[:-8] + f"{counter[0]:08d}".encode())

                def warm_refresh() -> None:
                    touch_one()
                    res = session.refresh()
                    assert res.plan.put == [target.relative_to(root / "packs").as_posix()], res.plan

                warm = timed(warm_refresh, opts.repeat)
                print(f"refresh of one changed file, open session, full scan:    {warm:7.3f} s")

                def watched_refresh() -> None:
                    touch_one()
                    res = session.refresh(paths=[target])
                    assert len(res.plan.put) == 1, res.plan

                watched = timed(watched_refresh, opts.repeat)
                print(f"refresh of one changed file, open session, path given:   {watched:7.3f} s")

            def oneshot_refresh() -> None:
                touch_one()
                with PacksSession(client, project) as s:
                    res = s.refresh()
                    assert len(res.plan.put) == 1, res.plan

            one = timed(oneshot_refresh, opts.repeat)
            print(f"refresh of one changed file, one-shot helper (CLI):      {one:7.3f} s")

            print()
            print(
                f"ratio full copy / one-file refresh, session, path given (watcher): {base / watched:6.1f}x"
            )
            print(f"ratio full copy / one-file refresh, session, full scan:            {base / warm:6.1f}x")
            print(f"ratio full copy / one-file refresh, one-shot helper:               {base / one:6.1f}x")
            if base_cli is not None:
                ratio = base_cli / one
                print(f"ratio compose run init-packs / one-shot refresh:                   {ratio:6.1f}x")
            worst = max(st_one, st_cold)
            print(
                f"status (one-shot, also right after a full copy) under 2 s: {'yes' if worst < 2 else 'NO'}"
            )
        finally:
            for c in client.containers.list(
                all=True, filters={"label": f"com.docker.compose.project={project.name}"}
            ):
                c.remove(force=True)
            client.volumes.get(volume).remove(force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
