"""`attune-console packs status|refresh|build-binaries`: the packs volume from the command line.

Exit codes: 0 done (``status``: volume in sync), 1 ``status`` found differences or no volume,
2 bad input or a failure (one line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from attune_console.commands._common import fail, resolve_workspace
from attune_console.core.errors import AttuneError

if TYPE_CHECKING:
    from attune_console.core.packs import After


def _client() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as exc:
        raise AttuneError(f"Docker daemon not reachable ({exc}): start Docker and try again") from None
    return client


def _print_status(st: Any) -> None:
    if not st.volume_exists:
        print(f"volume {st.volume} (project {st.project}) does not exist yet")
    else:
        state = "in sync with ./packs" if st.in_sync else "differs from ./packs"
        print(f"volume {st.volume} (project {st.project}): {state}")
    for name in st.interrupted:
        print(f"  an interrupted refresh ({name}) was rolled back")
    for p in st.packs:
        counts = f"+{len(p.added)} ~{len(p.changed)} -{len(p.removed)}, {p.unchanged} unchanged"
        print(f"  {p.pack:<24} {p.state:<10} {counts}")
        for mark, paths in (("+", p.added), ("~", p.changed), ("-", p.removed)):
            for path in paths:
                print(f"      {mark} {path}")


def _print_refresh(res: Any, seconds: float) -> None:
    plan = res.plan
    if res.created_volume:
        print(f"created volume {res.status_before.volume} and populated it as init-packs would")
    if plan.empty:
        print(f"volume {res.status_before.volume} already matches ./packs: nothing sent")
    else:
        print(
            f"refreshed volume {res.status_before.volume} in {seconds:.2f}s: "
            f"{len(plan.put)} file(s) written, "
            f"{len(plan.remove)} removed, {len(plan.new_packs)} pack(s) added, {len(plan.old_packs)} pack(s) "
            f"removed ({res.bytes_sent} bytes sent)"
        )
    for txn in res.recovered:
        print(f"rolled back an interrupted refresh ({txn}) first")
    for svc, what in res.services.items():
        print(f"  {svc}: {what}")


def _after(args: argparse.Namespace) -> After:
    if getattr(args, "restart", False):
        return "restart"
    if getattr(args, "hup", False):
        return "hup"
    return "none"


def _build_binaries(client: Any, project: Any, as_json: bool) -> list[Any]:
    """Build the pack binaries image through the build engine (progress as ``build`` prints it)."""
    from attune_console.commands.build import PlainPrinter
    from attune_console.core import pack_binaries
    from attune_console.core.docker_conn import DockerConnection
    from attune_console.core.engine import BuildEngine

    # With --json, stdout carries only the JSON result; progress goes to stderr.
    printer = PlainPrinter(sys.stderr if as_json else sys.stdout, prefix_service=False)

    async def build() -> Any:
        connection = DockerConnection()
        engine = BuildEngine(connection, concurrency=1)
        try:

            def show(r: Any) -> None:
                r.subscribe(printer)

            run = await pack_binaries.build_image(engine, project, on_run=show)
            printer.finish(run)
            return run
        finally:
            await engine.aclose()
            connection.close()

    run = asyncio.run(build())
    return pack_binaries.extract_binaries(client, run.image_id, project.root / "packs")


def run(args: argparse.Namespace) -> int:
    root = resolve_workspace(getattr(args, "workspace", "."))
    if root is None:
        return 2
    from attune_console.core.compose import load_compose
    from attune_console.core.packs import PacksSession

    as_json = bool(getattr(args, "json", False))
    try:
        project = load_compose(root)
        client = _client()
        installed: list[Any] = []
        if args.action == "build-binaries":
            installed = _build_binaries(client, project, as_json)
            if not as_json:
                for b in installed:
                    print(f"wrote {b.path.relative_to(root)} ({b.size} bytes, mode 0755)")
        with PacksSession(client, project) as session:
            if args.action == "status":
                st = session.status()
                if as_json:
                    print(json.dumps(st.as_dict(), indent=2))
                else:
                    _print_status(st)
                    if not st.volume_exists:
                        print(
                            "  run 'attune-console packs refresh' to create and populate it "
                            "(or start the stack: init-packs fills it)"
                        )
                return 0 if st.in_sync else 1
            t0 = time.perf_counter()
            res = session.refresh(_after(args))
            took = time.perf_counter() - t0
            if as_json:
                out = res.as_dict()
                out["seconds"] = round(took, 3)
                if installed:
                    out["binaries"] = [str(b.path) for b in installed]
                print(json.dumps(out, indent=2))
            else:
                _print_refresh(res, took)
            return 0
    except AttuneError as exc:
        return fail(str(exc))
