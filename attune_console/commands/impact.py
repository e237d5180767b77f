"""`attune-console impact PATH... [-w WORKSPACE] [--json]`: which services a change rebuilds, where, why."""

from __future__ import annotations

import argparse
import json
import os

from attune_console.commands._common import fail, resolve_workspace
from attune_console.core.errors import AttuneError


def run(args: argparse.Namespace) -> int:
    root = resolve_workspace(getattr(args, "workspace", "."))
    if root is None:
        return 2
    from attune_console.core.impact import impact
    from attune_console.core.model import Workspace

    try:
        ws = Workspace.load(root)
        # Relative paths are taken relative to the current directory, like any command line tool;
        # when that leaves the workspace, relative to the workspace (`impact -w demo crates/api/...`).
        paths = []
        for p in args.paths:
            cand = os.path.abspath(p)
            if ws.rel(cand) is None or not os.path.exists(cand):
                alt = os.path.join(root, p)
                if os.path.exists(alt) or ws.rel(cand) is None:
                    cand = alt
            paths.append(cand)
        outside = [p for p, c in zip(args.paths, paths, strict=True) if ws.rel(c) is None]
        if outside:
            return fail(f"{outside[0]}: not inside the workspace {root}")
        result = impact(ws, paths)
    except AttuneError as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    rows = [("SERVICE", "REBUILD", "FIRST MISS", "AT", "BECAUSE")]
    for s in result.services:
        rows.append(
            (
                s.service,
                "yes" if s.rebuild else "no",
                s.display or "-",
                f"{s.file}:{s.line}" if s.file else "-",
                s.reason or "-",
            )
        )
    widths = [min(max(len(r[i]) for r in rows), 70) for i in range(4)]
    for r in rows:
        cells = [r[i][: widths[i]].ljust(widths[i]) for i in range(4)]
        print("  ".join([*cells, r[4]]).rstrip())
    print()
    packs = f"yes ({result.packs_reason} changed: refresh the packs volume, no image rebuild)"
    print(f"packs refresh: {packs if result.packs_refresh else 'no'}")
    pb = result.pack_binaries_step
    if result.pack_binaries and pb is not None:
        print(f"pack binaries: yes (first miss {pb.display} at {pb.file}:{pb.line}, because {pb.reason})")
    else:
        print("pack binaries: no")
    return 0
