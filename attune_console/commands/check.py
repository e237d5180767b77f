"""`attune-console check [WORKSPACE] [--json]`: lint Dockerfiles and compose against the Cargo workspace.

Exit 0 when clean, 1 with findings, 2 when the workspace cannot be read (the reason is one
``file:line:col: message`` line on stderr).
"""

from __future__ import annotations

import argparse
import json

from attune_console.commands._common import fail, resolve_workspace
from attune_console.core.errors import AttuneError


def run(args: argparse.Namespace) -> int:
    root = resolve_workspace(getattr(args, "workspace", "."))
    if root is None:
        return 2
    from attune_console.core.lints import check, group_by_file
    from attune_console.core.model import Workspace

    try:
        ws = Workspace.load(root)
        findings = check(ws)
    except AttuneError as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps({"findings": [f.to_json() for f in findings]}, indent=2))
        return 1 if findings else 0
    if not findings:
        print(f"{root}: no findings ({len(ws.service_builds)} service builds checked)")
        return 0
    for file, items in group_by_file(findings).items():
        print(file)
        for f in items:
            print(f"  {f.line if f.line is not None else '-'}: {f.code} {f.severity}: {f.message}")
            print(f"      fix: {f.fix}")
    errors = sum(1 for f in findings if f.severity == "error")
    print(f"{len(findings)} finding(s): {errors} error(s), {len(findings) - errors} warning(s)")
    return 1
