"""The Cargo workspace: members, their package names, bin targets and path dependencies.

Only what the Docker build cares about: which directories are crates, which binaries exist
(a compose service's ``SERVICE`` arg must name one), and which crates a binary needs copied
into the builder stage (its path-dependency closure). Problems a user can fix (a member glob
matching nothing, a member without ``Cargo.toml``) are collected as :class:`CargoProblem`
so ``check`` can report them instead of crashing; malformed TOML raises :class:`InputError`.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attune_console.core.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_DEP_TABLES = ("dependencies", "build-dependencies")
_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


@dataclass(frozen=True)
class Crate:
    """One workspace member; ``dir`` is relative to the workspace root, POSIX style."""

    name: str
    dir: str
    manifest: Path
    bins: tuple[str, ...]
    has_lib: bool
    target_files: tuple[str, ...]  # crate-relative source files cargo requires (lib + bins)
    path_deps: tuple[str, ...]  # member dirs this crate needs to build (normal + build deps)
    dev_path_deps: tuple[str, ...]


@dataclass(frozen=True)
class CargoProblem:
    """Something wrong with the workspace that ``check`` reports (code chosen by the linter)."""

    kind: str  # "glob-empty" | "member-missing-manifest"
    file: Path
    line: int | None
    message: str


@dataclass
class CargoWorkspace:
    """The root manifest and its members; mutable so one member can be reloaded in place."""

    root: Path
    manifest: Path
    members: dict[str, Crate]  # by dir
    member_patterns: tuple[str, ...]
    exclude: tuple[str, ...]
    default_members: tuple[str, ...]
    workspace_path_deps: dict[str, str]  # [workspace.dependencies] name -> dir
    lock_version: int | None
    problems: list[CargoProblem] = field(default_factory=list)
    manifest_stats: dict[str, tuple[int, int]] = field(default_factory=dict)  # dir -> (size, mtime_ns)

    @property
    def by_name(self) -> dict[str, Crate]:
        return {c.name: c for c in self.members.values()}

    def bin_owner(self, bin_name: str) -> Crate | None:
        """The member that defines binary ``bin_name``, if any."""
        for crate in self.members.values():
            if bin_name in crate.bins:
                return crate
        return None

    def closure(self, crate_dir: str) -> list[str]:
        """``crate_dir`` and every member it depends on through path dependencies, in BFS order."""
        seen: list[str] = []
        todo = [crate_dir]
        while todo:
            d = todo.pop(0)
            if d in seen or d not in self.members:
                continue
            seen.append(d)
            todo.extend(self.members[d].path_deps)
        return seen


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning a decode error into an :class:`InputError` with line and column."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from exc
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc.reason}", path) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS.search(msg)
        line = int(m.group(1)) if m else None
        col = int(m.group(2)) if m else None
        if m is None and "end of document" in msg:
            lines = data.decode("utf-8", "replace").splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
            msg = msg.replace("(at end of document)", "at the end of the file")
        raise InputError(f"malformed TOML: {_TOML_POS.sub('', msg).strip()}", path, line, col) from exc


def line_of(path: Path, needle: str) -> int | None:
    """1-based line of the first occurrence of ``needle`` in ``path`` (for findings), or ``None``."""
    try:
        for i, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if needle in text:
                return i
    except OSError:
        return None
    return None


def _inside(root: Path, p: Path) -> bool:
    try:
        p.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _rel(root: Path, p: Path) -> str:
    return Path(os.path.normpath(p)).relative_to(root).as_posix()


def _bins(
    crate_dir: Path, pkg_name: str, doc: Mapping[str, Any]
) -> tuple[tuple[str, ...], bool, tuple[str, ...]]:
    """Binary names, whether there is a library, and the target source files cargo will require.

    Follows cargo's target discovery: ``[[bin]]`` entries (default path ``src/main.rs`` for the
    package-named bin, else ``src/bin/<name>.rs``), then, unless ``autobins = false``,
    ``src/main.rs`` and ``src/bin/*``. The required files are the explicit ``[lib]``/``[[bin]]``
    paths plus what auto-discovery found: a planner must create each of them as a dummy.
    """
    pkg = doc.get("package") or {}
    names: list[str] = []
    files: list[str] = []
    for b in doc.get("bin") or []:
        if isinstance(b, Mapping) and isinstance(b.get("name"), str):
            names.append(b["name"])
            path = b.get("path")
            if not isinstance(path, str):
                path = "src/main.rs" if b["name"] == pkg_name else f"src/bin/{b['name']}.rs"
            files.append(os.path.normpath(path))
    if pkg.get("autobins", True) is not False:
        if (crate_dir / "src" / "main.rs").is_file() and "src/main.rs" not in files:
            names.append(pkg_name)
            files.append("src/main.rs")
        bin_dir = crate_dir / "src" / "bin"
        if bin_dir.is_dir():
            for entry in sorted(bin_dir.iterdir()):
                if entry.suffix == ".rs" and entry.is_file():
                    rel = f"src/bin/{entry.name}"
                    if rel not in files:
                        names.append(entry.stem)
                        files.append(rel)
                elif entry.is_dir() and (entry / "main.rs").is_file():
                    rel = f"src/bin/{entry.name}/main.rs"
                    if rel not in files:
                        names.append(entry.name)
                        files.append(rel)
    lib = doc.get("lib")
    has_lib = isinstance(lib, Mapping) or (crate_dir / "src" / "lib.rs").is_file()
    if has_lib:
        lib_path = lib.get("path") if isinstance(lib, Mapping) else None
        files.append(os.path.normpath(lib_path) if isinstance(lib_path, str) else "src/lib.rs")
    return tuple(dict.fromkeys(names)), has_lib, tuple(dict.fromkeys(f.replace(os.sep, "/") for f in files))


def _path_deps(
    root: Path, crate_dir: Path, doc: Mapping[str, Any], ws_deps: Mapping[str, str], tables: Iterable[str]
) -> tuple[str, ...]:
    """Dirs (relative to ``root``) of the path dependencies in ``tables`` incl. target-specific ones."""
    sections: list[Mapping[str, Any]] = []
    for t in tables:
        if isinstance(doc.get(t), Mapping):
            sections.append(doc[t])
    for tgt in (doc.get("target") or {}).values():
        if isinstance(tgt, Mapping):
            for t in tables:
                if isinstance(tgt.get(t), Mapping):
                    sections.append(tgt[t])
    out: list[str] = []
    for section in sections:
        for name, spec in section.items():
            if not isinstance(spec, Mapping):
                continue
            if spec.get("workspace") is True:
                if name in ws_deps:
                    out.append(ws_deps[name])
            elif isinstance(spec.get("path"), str):
                target = Path(os.path.normpath(crate_dir / spec["path"]))
                if _inside(root, target):
                    out.append(_rel(root, target))
    return tuple(dict.fromkeys(out))


def load_crate(root: Path, crate_dir: str, ws_deps: Mapping[str, str]) -> Crate:
    """Read one member's ``Cargo.toml`` (raises :class:`InputError` when malformed)."""
    d = root / crate_dir
    manifest = d / "Cargo.toml"
    doc = read_toml(manifest)
    pkg = doc.get("package")
    if not isinstance(pkg, Mapping) or not isinstance(pkg.get("name"), str):
        raise InputError("workspace member manifest has no [package] name", manifest, 1, 1)
    name = pkg["name"]
    bins, has_lib, target_files = _bins(d, name, doc)
    return Crate(
        name=name,
        dir=crate_dir,
        manifest=manifest,
        bins=bins,
        has_lib=has_lib,
        target_files=target_files,
        path_deps=_path_deps(root, d, doc, ws_deps, _DEP_TABLES),
        dev_path_deps=_path_deps(root, d, doc, ws_deps, ("dev-dependencies",)),
    )


def _expand_members(
    root: Path, patterns: Iterable[str], manifest: Path
) -> tuple[list[str], list[CargoProblem]]:
    dirs: list[str] = []
    problems: list[CargoProblem] = []
    for pat in patterns:
        if any(c in pat for c in "*?["):
            hits = sorted(p for p in glob.glob(str(root / pat)) if os.path.isdir(p))
            hits = [h for h in hits if _inside(root, Path(h))]
            if not hits:
                problems.append(
                    CargoProblem(
                        "glob-empty",
                        manifest,
                        line_of(manifest, pat),
                        f"workspace member pattern {pat!r} matches no directory",
                    )
                )
            dirs.extend(_rel(root, Path(h)) for h in hits)
        else:
            p = root / pat
            if not _inside(root, p):
                problems.append(
                    CargoProblem(
                        "member-missing-manifest",
                        manifest,
                        line_of(manifest, pat),
                        f"workspace member {pat!r} leaves the workspace (symlink or '..'); not followed",
                    )
                )
                continue
            dirs.append(_rel(root, p))
    return list(dict.fromkeys(dirs)), problems


def _stat_key(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def load_cargo(root: Path, previous: CargoWorkspace | None = None) -> CargoWorkspace:
    """Load the workspace rooted at ``root`` (its ``Cargo.toml`` must have ``[workspace]``).

    With ``previous``, members whose manifest has the same size and mtime (and whose
    ``[workspace.dependencies]`` paths did not change) are reused instead of re-parsed, so a
    root-manifest edit in a 300-crate workspace does not re-read 300 files.
    """
    root = Path(root).resolve()
    manifest = root / "Cargo.toml"
    doc = read_toml(manifest)
    ws = doc.get("workspace")
    if not isinstance(ws, Mapping):
        raise InputError("root Cargo.toml has no [workspace] table", manifest, 1, 1)
    for list_key in ("members", "exclude", "default-members"):
        value = ws.get(list_key, [])
        if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
            raise InputError(
                f'workspace.{list_key} must be a list of paths, e.g. {list_key} = ["crates/*"]',
                manifest,
                line_of(manifest, list_key),
                1,
            )
    patterns = tuple(ws.get("members") or [])
    exclude = tuple(os.path.normpath(e) for e in ws.get("exclude") or [])
    ws_deps: dict[str, str] = {}
    for name, spec in (ws.get("dependencies") or {}).items():
        if isinstance(spec, Mapping) and isinstance(spec.get("path"), str):
            target = Path(os.path.normpath(root / spec["path"]))
            if _inside(root, target):
                ws_deps[name] = _rel(root, target)
    dirs, problems = _expand_members(root, patterns, manifest)
    if isinstance(doc.get("package"), Mapping) and "." not in dirs:
        dirs.insert(0, ".")
    members: dict[str, Crate] = {}
    stats: dict[str, tuple[int, int]] = {}
    for d in dirs:
        if d in exclude:
            continue
        key = _stat_key(root / d / "Cargo.toml")
        if key == (-1, -1):
            problems.append(
                CargoProblem(
                    "member-missing-manifest",
                    manifest,
                    line_of(manifest, d.split("/")[-1]),
                    f"workspace member {d!r} has no Cargo.toml",
                )
            )
            continue
        stats[d] = key
        prev = previous.members.get(d) if previous is not None else None
        if (
            prev is not None
            and previous is not None
            and previous.manifest_stats.get(d) == key
            and previous.workspace_path_deps == ws_deps
        ):
            members[d] = prev
        else:
            members[d] = load_crate(root, d, ws_deps)
    lock_version: int | None = None
    lock = root / "Cargo.lock"
    if lock.is_file():
        v = read_toml(lock).get("version")
        lock_version = v if isinstance(v, int) else 1
    return CargoWorkspace(
        root=root,
        manifest=manifest,
        members=members,
        member_patterns=patterns,
        exclude=exclude,
        default_members=tuple(str(m) for m in ws.get("default-members") or []),
        workspace_path_deps=ws_deps,
        lock_version=lock_version,
        problems=problems,
        manifest_stats=stats,
    )
