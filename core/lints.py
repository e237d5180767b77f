"""``check``: the layer-optimisation mistakes the seed warns about, each with a stable code.

Every finding names a file and line, says in one line why it matters and how to fix it. Codes
are stable so they can be silenced in ``attune-console.toml`` (see :mod:`lint_config`):

========  ========  ==================================================================
AC100     error     a Dockerfile a compose service builds from does not exist
AC101     error     a workspace member's Cargo.toml is not in the image when cargo runs
AC102     error     a workspace member has no (dummy or real) source for one of its targets
AC103     error     a workspace member pattern matches nothing / a member has no Cargo.toml
AC110     error     the final build lacks the real sources of a crate the binary depends on
AC111     warning   real sources copied over dummy-built artefacts with nothing forcing a rebuild
AC120     warning   a target cache mount has no per-service ``id`` (shared between services)
AC121     warning   a target cache mount shared by services uses ``sharing=locked`` (serialises them)
AC122     warning   a cargo registry/git cache mount is not ``sharing=shared``
AC130     warning   ``COPY crates/ ./crates/`` or ``COPY . .`` before the build: every change rebuilds all
AC140     error     packs are copied into an image
AC141     warning   a built service does not mount the packs volume
AC142     error     a service mounts the packs volume writable
AC143     error     no init service fills the packs volume
AC144     warning   a service mounting packs does not wait for the init service to complete
AC150     error     a build arg ``SERVICE`` (a ``--bin``) names no binary of the workspace
AC151     error     ``build.target`` names no stage of the Dockerfile
AC160     warning   ``# syntax=`` makes BuildKit fetch a frontend image (fails offline)
========  ========  ==================================================================
"""

from __future__ import annotations

import fnmatch
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from attune_console.core.cargo import Crate
from attune_console.core.dockerfile import BuildPlan, Step, expand
from attune_console.core.lint_config import LintConfig, load_lint_config
from attune_console.core.model import PACK_BINARIES, ServiceBuild, Workspace

SEVERITY: dict[str, str] = {
    "AC100": "error",
    "AC101": "error",
    "AC102": "error",
    "AC103": "error",
    "AC110": "error",
    "AC111": "warning",
    "AC120": "warning",
    "AC121": "warning",
    "AC122": "warning",
    "AC130": "warning",
    "AC140": "error",
    "AC141": "warning",
    "AC142": "error",
    "AC143": "error",
    "AC144": "warning",
    "AC150": "error",
    "AC151": "error",
    "AC160": "warning",
}

_CARGO_BUILD = re.compile(r"\bcargo\s+(?:\+\S+\s+)?(?:build|install|test|check)\b")
_BIN = re.compile(r"--bin(?:=|\s+)(\S+)")
_FOR = re.compile(r"\bfor\s+(\w+)\s+in\s+([^;]*?)\s*;\s*do\b(.*?)\bdone\b", re.S)
_REDIRECT = re.compile(r">>?\s*([^\s;&|<>()]+)")
_TOUCH = re.compile(r"\btouch\s+((?:[^\s;&|<>()]+\s*)+)")
_FIND = re.compile(r"\bfind\s+((?:[^\s;&|-][^\s;&|]*\s+)+)")
_REGISTRY_TARGETS = ("/cargo/registry", "/cargo/git", "/.cargo/registry", "/.cargo/git")


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    file: str  # workspace-relative
    line: int | None
    message: str
    fix: str

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "fix": self.fix,
        }


class _Out:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.items: dict[tuple[str, str, int | None, str], Finding] = {}

    def add(self, code: str, file: object, line: int | None, message: str, fix: str) -> None:
        rel = self.ws.rel(str(file)) or str(file)
        key = (code, rel, line, message)
        if key not in self.items:
            self.items[key] = Finding(code, SEVERITY[code], rel, line, message, fix)


# --- helpers over plans -----------------------------------------------------------------------


def covers(src: str, path: str) -> bool:
    """True when a ``COPY`` source ``src`` (context-relative, maybe a glob) brings ``path`` in."""
    if src in ("", "."):
        return True
    sp, pp = src.split("/"), path.split("/")
    if len(sp) > len(pp):
        return False
    return all(fnmatch.fnmatchcase(p, s) for s, p in zip(sp, pp, strict=False))


def expand_for_loops(text: str) -> str:
    """Unroll ``for c in a b; do ... $c ...; done`` so created file names can be read off."""

    def unroll(m: re.Match[str]) -> str:
        var, words, body = m.group(1), m.group(2).split(), m.group(3)
        return " ; ".join(re.sub(r"\$\{?" + var + r"\b\}?", w, body) for w in words)

    return _FOR.sub(unroll, text)


def created_files(step: Step) -> set[str]:
    """Files a ``RUN`` creates by redirection or ``touch`` (relative, ``./`` stripped)."""
    text = expand_for_loops(expand(step.instr.rest, dict(step.arg_env), keep_unset=True))
    out: set[str] = set()
    for m in _REDIRECT.finditer(text):
        out.add(m.group(1).strip("\"'"))
    for m in _TOUCH.finditer(text):
        out.update(w.strip("\"'") for w in m.group(1).split() if not w.startswith("-"))
    return {_strip(p) for p in out}


def _strip(p: str) -> str:
    p = p.removeprefix("./")
    return p


def _rel_to_workdir(path: str, workdir: str) -> str:
    """A path written in the image, relative to the build's workdir (how the context mirrors it)."""
    if path.startswith("/"):
        wd = workdir.rstrip("/") + "/"
        return path[len(wd) :] if path.startswith(wd) else path
    return path


def chain_before(plan: BuildPlan, index: int) -> list[int]:
    """Indices of the steps whose result is in the filesystem ``plan.steps[index]`` runs on."""
    stage = plan.steps[index].stage
    stages = {stage}
    s = stage
    while True:
        frm = next((st for st in plan.steps if st.stage == s and st.keyword == "FROM"), None)
        if frm is None or frm.from_stage is None:
            break
        s = frm.from_stage
        stages.add(s)
    return [j for j, st in enumerate(plan.steps[:index]) if st.stage in stages]


def cargo_builds(plan: BuildPlan) -> list[int]:
    return [i for i, s in enumerate(plan.steps) if s.keyword == "RUN" and _CARGO_BUILD.search(s.name or "")]


class _Presence:
    """What the context ``COPY`` steps of one chain bring in, indexed by literal source path.

    ``find(path)`` costs one dict probe per path component (plus the rare glob), so checking
    300 members against 300 ``COPY`` steps for 40 services stays well under a second.
    """

    def __init__(self, ws: Workspace, b: ServiceBuild, plan: BuildPlan, chain: list[int]) -> None:
        ctx_rel = ws.rel(b.context) or ""
        self.prefix = "" if ctx_rel in ("", ".") else ctx_rel + "/"
        self.ignore = ws.ignores.get(b.context)
        self.exact: dict[str, Step] = {}
        self.globs: list[tuple[list[str], Step]] = []
        for j in chain:
            st = plan.steps[j]
            for src in st.sources:
                if any(c in src for c in "*?["):
                    self.globs.append((src.split("/"), st))
                else:
                    self.exact.setdefault("" if src == "." else src, st)

    def find(self, path: str) -> Step | None:
        """The first ``COPY`` that brings ``path`` (workspace-relative) in, after .dockerignore."""
        if self.prefix:
            if not path.startswith(self.prefix):
                return None
            path = path[len(self.prefix) :]
        if self.ignore is not None and self.ignore.excluded(path):
            return None
        best: Step | None = None
        hit = self.exact.get("")
        if hit is not None:
            best = hit
        i = path.find("/")
        while True:
            pfx = path if i < 0 else path[:i]
            hit = self.exact.get(pfx)
            if hit is not None and (best is None or hit.instr.line < best.instr.line):
                best = hit
            if i < 0:
                break
            i = path.find("/", i + 1)
        if self.globs:
            parts = path.split("/")
            for gparts, st in self.globs:
                if (
                    (best is None or st.instr.line < best.instr.line)
                    and len(gparts) <= len(parts)
                    and all(fnmatch.fnmatchcase(p, g) for g, p in zip(gparts, parts, strict=False))
                ):
                    best = st
        return best


def _dummies(plan: BuildPlan, chain: list[int]) -> set[str]:
    out: set[str] = set()
    for j in chain:
        st = plan.steps[j]
        if st.keyword == "RUN":
            out.update(_rel_to_workdir(p, st.workdir) for p in created_files(st))
    return out


def _mounts(step: Step, kind: str = "cache") -> list[dict[str, str]]:
    return [m for m in step.mounts if m.get("type") == kind]


def _is_target_mount(m: dict[str, str]) -> bool:
    return m.get("target", "").rstrip("/").endswith("/target") or m.get("target", "") == "target"


# --- lints ------------------------------------------------------------------------------------


def _lint_members(
    out: _Out, ws: Workspace, b: ServiceBuild, plan: BuildPlan, reported: set[tuple[Path, str, str]]
) -> None:
    """AC101 / AC102: before every cargo run, every member's manifest and target files exist.

    Reported once per Dockerfile and crate (the first cargo run that lacks it), not per service.
    """
    for i in cargo_builds(plan):
        step = plan.steps[i]
        chain = chain_before(plan, i)
        dummies = _dummies(plan, chain)
        present = _Presence(ws, b, plan, chain)
        last_manifest_copy = max(
            (plan.steps[j] for j in chain if any(s.endswith("Cargo.toml") for s in plan.steps[j].sources)),
            key=lambda s: s.instr.line,
            default=step,
        )
        for crate in ws.cargo.members.values():
            manifest = f"{crate.dir}/Cargo.toml" if crate.dir != "." else "Cargo.toml"
            if (step.instr.file, crate.dir, "AC101") in reported:
                continue
            if present.find(manifest) is None:
                reported.add((step.instr.file, crate.dir, "AC101"))
                out.add(
                    "AC101",
                    step.instr.file,
                    last_manifest_copy.instr.line,
                    f"workspace member {crate.dir} ({crate.name}) is not copied before "
                    f"'{_short(step)}' (stage {step.stage_label}): cargo fails to load the workspace "
                    '(the seed\'s "crate not found")',
                    f"add `COPY {manifest} ./{manifest}` to stage {step.stage_label} "
                    "with the other manifests",
                )
                continue
            if (step.instr.file, crate.dir, "AC102") in reported:
                continue
            missing = [
                f
                for f in crate.target_files
                if present.find(_join(crate.dir, f)) is None and _join(crate.dir, f) not in dummies
            ]
            if missing:
                reported.add((step.instr.file, crate.dir, "AC102"))
                out.add(
                    "AC102",
                    step.instr.file,
                    step.instr.line,
                    f"workspace member {crate.dir} has no source for {', '.join(missing)} before "
                    f"'{_short(step)}': cargo cannot load its targets",
                    _dummy_fix(crate, missing),
                )


def _dummy_fix(crate: Crate, missing: list[str]) -> str:
    dirs = sorted({os.path.dirname(_join(crate.dir, f)) for f in missing})
    cmds = [f"mkdir -p {' '.join(dirs)}"]
    for f in missing:
        path = _join(crate.dir, f)
        lib = crate.has_lib and f not in crate.target_files[: len(crate.bins)]
        cmds.append(f"touch {path}" if lib else f"echo 'fn main() {{}}' > {path}")
    return "create dummies before the build: `RUN " + " && ".join(cmds) + "`"


def _bin_crate(ws: Workspace, step: Step) -> tuple[str | None, Crate | None]:
    m = _BIN.search(step.name or "")
    if m is None:
        return None, None
    name = m.group(1).strip("\"'")
    return name, ws.cargo.bin_owner(name)


def _lint_final_build(out: _Out, ws: Workspace, b: ServiceBuild, plan: BuildPlan) -> None:
    """AC110 (path deps copied), AC111 (stale dummy artefacts), AC150 (--bin names a binary)."""
    builds = cargo_builds(plan)
    if not builds:
        return
    final = builds[-1]
    step = plan.steps[final]
    chain = chain_before(plan, final)
    bin_name, owner = _bin_crate(ws, step)
    if bin_name is not None and owner is None and "$" not in bin_name:
        svc_line = b.compose.line if b.compose else None
        arg = plan.args.get("SERVICE")
        where = f"build arg SERVICE={arg!r} makes " if arg is not None else ""
        out.add(
            "AC150",
            ws.compose.file if b.compose and arg is not None else step.instr.file,
            svc_line if b.compose and arg is not None else step.instr.line,
            f"service {b.name}: {where}'cargo build --bin {bin_name}' but no workspace crate has a binary "
            f"{bin_name!r}",
            "set SERVICE to one of: "
            + ", ".join(sorted(x for c in ws.cargo.members.values() for x in c.bins))[:200],
        )
    if bin_name is None and b.compose is not None and plan.args.get("SERVICE"):
        # no --bin to read: the SERVICE arg must still name a binary (or a member crate) of the workspace
        arg = plan.args["SERVICE"]
        bins = {x for c in ws.cargo.members.values() for x in c.bins}
        crates = {c.name for c in ws.cargo.members.values()} | {
            c.dir.rsplit("/", 1)[-1] for c in ws.cargo.members.values()
        }
        if arg not in bins | crates and not any(x.endswith(f"-{arg}") for x in bins):
            out.add(
                "AC150",
                ws.compose.file,
                b.compose.line,
                f"service {b.name}: build arg SERVICE={arg!r} names no binary or crate of the workspace",
                "set SERVICE to one of: " + ", ".join(sorted(bins))[:200],
            )
    if owner is None:
        return
    dummies = _dummies(plan, chain)
    present = _Presence(ws, b, plan, chain)
    really: list[tuple[str, Step]] = []
    for d in ws.cargo.closure(owner.dir):
        crate = ws.cargo.members[d]
        files = [_join(d, f) for f in crate.target_files] or [_join(d, "src/lib.rs")]
        src_copy = None
        for f in files:
            src_copy = present.find(f)
            if src_copy is not None:
                break
        if src_copy is None:
            dep_note = "" if d == owner.dir else f" ({owner.name} depends on it through a path dependency)"
            out.add(
                "AC110",
                step.instr.file,
                step.instr.line,
                f"service {b.name}: the real sources of {d}{dep_note} are not copied before "
                f"'{_short(step)}': it builds against the dummy or fails to link",
                f"add `COPY {d}/ ./{d}/` to stage {step.stage_label} before the build",
            )
        else:
            really.append((d, src_copy))
    # AC111: dummy artefacts from an earlier cargo build in the chain, real sources copied later
    earlier = [i for i in builds if i in chain]
    if not earlier:
        return
    dummy_build = plan.steps[earlier[-1]]
    if not _shares_target(dummy_build, step):
        return
    text = expand(step.instr.rest, dict(step.arg_env), keep_unset=True)
    if re.search(r"\bcargo\s+clean\b|\.fingerprint|rm\s+-r[f]?\s+\S*target", text):
        return
    touched = [_strip(w) for m in _FIND.finditer(text) for w in m.group(1).split()]
    touched += [_strip(w) for m in _TOUCH.finditer(text) for w in m.group(1).split() if not w.startswith("-")]
    touched = [_rel_to_workdir(t, step.workdir) for t in touched]
    for d, copy_step in really:
        if copy_step.instr.line < dummy_build.instr.line and plan.steps.index(copy_step) < earlier[-1]:
            continue  # copied before the dummy build: the artefacts are real
        had_dummy = any(x.startswith(d + "/") for x in dummies)
        if not had_dummy:
            continue
        if any(covers(t.rstrip("/") or ".", d) for t in touched):
            continue
        out.add(
            "AC111",
            step.instr.file,
            step.instr.line,
            f"service {b.name}: real sources of {d} are copied over artefacts cargo built from a dummy, "
            f"but '{_short(step)}' does nothing to make cargo rebuild them; COPY keeps old mtimes, so "
            'cargo may ship the dummy (the seed\'s "changes not reflected")',
            f"start the RUN with `find {d} -name '*.rs' -exec touch {{}} + && ...`",
        )


def _shares_target(a: Step, b: Step) -> bool:
    """Whether cargo in ``b`` sees the target dir ``a`` wrote (same cache id, or both in the image)."""
    ta = [m for m in _mounts(a) if _is_target_mount(m)]
    tb = [m for m in _mounts(b) if _is_target_mount(m)]
    if not ta and not tb:
        return True
    if bool(ta) != bool(tb):
        return not ta  # a wrote into the image, b reads the image's target only without a mount
    return any((x.get("id") or x.get("target")) == (y.get("id") or y.get("target")) for x in ta for y in tb)


def _lint_mounts(out: _Out, ws: Workspace) -> None:
    """AC120/AC121/AC122 over all builds together (sharing is a cross-service property)."""
    users: dict[tuple[str, int, str], dict[str, set[str]]] = {}
    locked: set[tuple[str, int, str, str]] = set()
    for b in ws.builds.values():
        if b.plan is None:
            continue
        for step in b.plan.steps:
            for m in _mounts(step):
                target = m.get("target", "")
                if _is_target_mount(m):
                    key = (str(step.instr.file), step.instr.line, target)
                    cache_id = m.get("id") or target
                    users.setdefault(key, {}).setdefault(cache_id, set()).add(b.name)
                    if m.get("sharing") == "locked":
                        locked.add((*key, cache_id))
                elif any(target.rstrip("/").endswith(t) for t in _REGISTRY_TARGETS) and (
                    m.get("sharing", "shared") != "shared"
                ):
                    out.add(
                        "AC122",
                        step.instr.file,
                        step.instr.line,
                        f"cargo cache mount {target} uses sharing={m.get('sharing')}: "
                        "builds serialise on "
                        "(locked) or duplicate (private) a cache cargo can share safely",
                        "use `sharing=shared` for the registry and git caches",
                    )
    for (file, line, target), by_id in users.items():
        for cache_id, names in by_id.items():
            services = sorted(n for n in names if n != PACK_BINARIES)
            if len(services) > 1 and (file, line, target, cache_id) in locked:
                out.add(
                    "AC121",
                    file,
                    line,
                    f"target cache mount {target} (id {cache_id!r}) is shared by {', '.join(services)} with "
                    "sharing=locked: their builds wait for each other instead of running in parallel",
                    "give each service its own cache (`id=target-builder-${SERVICE}`); locked then only "
                    "serialises builds of the same service",
                )
            if len(services) > 1:
                out.add(
                    "AC120",
                    file,
                    line,
                    f"target cache mount {target} (id {cache_id!r}) is shared by {', '.join(services)}: "
                    "parallel builds collide ('File exists') or evict each other's artefacts",
                    "add a per-service id: `--mount=type=cache,target="
                    + target
                    + ",id=target-builder-${SERVICE}`",
                )


def _lint_broad_copy(
    out: _Out, ws: Workspace, b: ServiceBuild, plan: BuildPlan, under: dict[str, int]
) -> None:
    """AC130: a COPY of several members' sources (or the whole context) before the final build.

    ``under`` maps every directory to the number of member crates below (or at) it.
    """
    builds = cargo_builds(plan)
    if not builds:
        return
    total = sum(1 for c in ws.cargo.members.values() if c.dir != ".")
    if total < 2:
        return
    ctx_rel = ws.rel(b.context) or ""
    prefix = "" if ctx_rel in ("", ".") else ctx_rel + "/"
    for j in chain_before(plan, builds[-1]):
        st = plan.steps[j]
        for src in st.sources:
            if src in ("", "."):
                n = under.get(ctx_rel if prefix else "", total)
            elif any(c in src for c in "*?["):
                n = sum(
                    1
                    for d in under
                    if under[d] and covers(prefix + src, d) and d.count("/") == src.count("/")
                )
            else:
                n = under.get(prefix + src, 0)
            if n >= 2:
                out.add(
                    "AC130",
                    st.instr.file,
                    st.instr.line,
                    f"'{_short(st)}' copies the sources of {n} crates in one layer before the build: "
                    "a change in any of them rebuilds every service",
                    "copy only the crates the service needs: `COPY crates/common/ ./crates/common/` and "
                    "`COPY crates/${SERVICE}/ ./crates/${SERVICE}/`",
                )
                break


def _members_under(ws: Workspace) -> dict[str, int]:
    counts: dict[str, int] = {"": 0}
    for c in ws.cargo.members.values():
        if c.dir == ".":
            continue
        counts[""] += 1
        parts = c.dir.split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            counts[d] = counts.get(d, 0) + 1
    return counts


def _lint_packs(out: _Out, ws: Workspace) -> None:
    packs = ws.packs
    compose = ws.compose
    # AC140: packs copied into an image
    for b in ws.builds.values():
        if b.plan is None:
            continue
        ignore = ws.ignores.get(b.context)
        ctx_rel = ws.rel(b.context) or ""
        for st in b.plan.steps:
            for src in st.sources:
                for pdir in packs.source_dirs:
                    cdir = pdir if ctx_rel in ("", ".") else pdir.removeprefix(ctx_rel + "/")
                    inside = bool(src) and covers(cdir, src)  # COPY packs/core/x: part of the packs
                    around = covers(src, cdir)  # COPY packs/, COPY . .: the packs dir and more
                    if inside or around:
                        if around and not inside and ignore is not None and ignore.excluded(cdir):
                            continue  # `COPY . .` with packs/ in .dockerignore copies no pack
                        out.add(
                            "AC140",
                            st.instr.file,
                            st.instr.line,
                            f"'{_short(st)}' puts {pdir}/ into the {b.name} image: packs belong in the "
                            f"{packs.volume or 'packs'} volume, and every pack edit now rebuilds the image",
                            f"remove the COPY (or add `{cdir}/` to .dockerignore); "
                            "services mount the packs volume",
                        )
    if packs.volume is None:
        if packs.source_dirs:
            out.add(
                "AC143",
                compose.file,
                1,
                f"{packs.source_dirs[0]}/ exists but no compose volume holds packs "
                "and no init service fills it",
                "declare `volumes: {packs_data: {}}` and an `init-packs` service that copies ./packs into it",
            )
        return
    if packs.init_service is None:
        out.add(
            "AC143",
            compose.file,
            compose.volume_lines.get(packs.volume, 1),
            f"nothing fills the packs volume {packs.volume}: "
            "no service mounts it writable with ./packs bound",
            "add an `init-packs` service mounting `./packs:/source/packs:ro` "
            f"and `{packs.volume}:{packs.target}`",
        )
    for name, svc in compose.services.items():
        if name == packs.init_service:
            continue
        mounts = [m for m in svc.volumes if m.type == "volume" and m.source == packs.volume]
        if svc.build is not None and not mounts:
            out.add(
                "AC141",
                compose.file,
                svc.line,
                f"service {name} does not mount the packs volume {packs.volume}: it runs without packs",
                f"add `- {packs.volume}:{packs.target or '/opt/attune/packs'}:ro` to its volumes",
            )
        for m in mounts:
            if not m.read_only:
                out.add(
                    "AC142",
                    compose.file,
                    svc.line,
                    f"service {name} mounts the packs volume {packs.volume} writable: it can corrupt every "
                    "service's packs",
                    f"mount it read-only: `- {packs.volume}:{m.target}:ro`",
                )
        if mounts and packs.init_service is not None:
            cond = svc.depends_on.get(packs.init_service)
            if cond != "service_completed_successfully":
                what = "does not depend on" if cond is None else f"waits only for {cond} of"
                out.add(
                    "AC144",
                    compose.file,
                    svc.line,
                    f"service {name} {what} {packs.init_service}: "
                    "it can start before the packs volume is filled",
                    f"add `depends_on: {{{packs.init_service}: "
                    "{condition: service_completed_successfully}}`",
                )


@lru_cache(maxsize=1)
def _registry_reachable() -> bool:
    """One quick TCP probe of Docker Hub; ``ATTUNE_OFFLINE=1`` / ``0`` forces the answer."""
    forced = os.environ.get("ATTUNE_OFFLINE")
    if forced is not None:
        return forced.strip() in ("0", "", "false", "no")
    try:
        with socket.create_connection(("registry-1.docker.io", 443), timeout=1.5):
            return True
    except OSError:
        return False


def _lint_dockerfiles(out: _Out, ws: Workspace) -> None:
    for b in ws.builds.values():
        if b.plan is None:
            where = ws.compose.file if b.compose else b.dockerfile
            out.add(
                "AC100",
                where,
                b.compose.line if b.compose else None,
                f"service {b.name}: Dockerfile {ws.rel(b.dockerfile) or b.dockerfile} does not exist",
                "fix build.dockerfile (it is relative to build.context) or create the file",
            )
            continue
        if b.plan.unknown_target:
            out.add(
                "AC151",
                ws.compose.file,
                b.compose.line if b.compose else None,
                f"service {b.name}: build.target {b.plan.unknown_target!r} is not a stage of "
                f"{ws.rel(b.dockerfile)} (stages: {', '.join(s.label for s in b.plan.dockerfile.stages)})",
                "name one of the stages (FROM ... AS <name>)",
            )
    for path, df in ws.dockerfiles.items():
        if "syntax" in df.directives and not _registry_reachable():
            out.add(
                "AC160",
                path,
                1,
                f"'# syntax={df.directives['syntax']}' makes BuildKit fetch a frontend image; no registry "
                "answers here, so every build fails at once",
                "remove the line: the engine's built-in frontend handles cache mounts and ARG before FROM",
            )


def _short(step: Step) -> str:
    """The step for a message: a RUN without its ``--mount`` flags, the cargo command first."""
    text = step.name or step.instr.text
    if step.keyword == "RUN" and step.instr.args:
        body = step.instr.args[0]  # as written: one finding may stand for several services
        m = _CARGO_BUILD.search(body)
        text = "RUN " + (" ".join(body[m.start() :].split()) if m else " ".join(body.split()))
    return text if len(text) <= 60 else text[:57] + "..."


def _join(d: str, f: str) -> str:
    return f if d in ("", ".") else f"{d}/{f}"


def check(ws: Workspace, config: LintConfig | None = None) -> list[Finding]:
    """All findings for ``ws``, minus those silenced by ``config`` (default: the workspace's file)."""
    config = config if config is not None else load_lint_config(ws.root)
    out = _Out(ws)
    for p in ws.cargo.problems:
        out.add(
            "AC103",
            p.file,
            p.line,
            p.message,
            "fix the `members` entry in Cargo.toml or add the crate's Cargo.toml",
        )
    _lint_dockerfiles(out, ws)
    seen_plans: set[int] = set()
    reported: set[tuple[Path, str, str]] = set()
    under = _members_under(ws)
    for b in ws.builds.values():
        if b.plan is None:
            continue
        _lint_final_build(out, ws, b, b.plan)
        if id(b.plan) in seen_plans:
            continue
        seen_plans.add(id(b.plan))
        _lint_members(out, ws, b, b.plan, reported)
        _lint_broad_copy(out, ws, b, b.plan, under)
    _lint_mounts(out, ws)
    _lint_packs(out, ws)
    findings = [f for f in out.items.values() if not config.silenced(f.code, f.file)]
    findings.sort(key=lambda f: (f.file, f.line or 0, f.code))
    return findings


def group_by_file(findings: Iterable[Finding]) -> dict[str, list[Finding]]:
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(f.file, []).append(f)
    return groups
