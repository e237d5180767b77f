"""The workspace aggregate: Cargo workspace + compose project + resolved Dockerfiles, reloadable per file.

Everything ``check``, ``impact`` and the fingerprints need is derived once at :meth:`Workspace.load`:
each compose service with a build gets a :class:`~attune_console.core.dockerfile.BuildPlan` (its
Dockerfile resolved with its build args and target), each build context its ``.dockerignore``.
:meth:`Workspace.reload` takes the changed paths a file watcher reports and redoes only what those
files feed: one member manifest re-reads one crate, one Dockerfile re-resolves only the services
built from it, a source file changes nothing in the model at all.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from attune_console.core.cargo import CargoWorkspace, load_cargo, load_crate, read_toml
from attune_console.core.compose import ComposeProject, ComposeService, load_compose
from attune_console.core.dockerfile import BuildPlan, Dockerfile, ResolveCache, parse, resolve
from attune_console.core.dockerignore import DockerIgnore
from attune_console.core.errors import InputError

#: Key of the pack-binaries build in :attr:`Workspace.builds` (it is not a compose service).
PACK_BINARIES = "(pack-binaries)"


@dataclass
class ServiceBuild:
    """One image build: a compose service's, or the pack-binaries image."""

    name: str
    context: Path
    dockerfile: Path
    plan: BuildPlan | None  # None when the Dockerfile is missing
    compose: ComposeService | None
    problem: str | None = None

    @property
    def args(self) -> dict[str, str]:
        return self.plan.args if self.plan else {}


@dataclass(frozen=True)
class PacksLayout:
    """Where packs live: the named volume, the host dirs the init service copies from, who inits."""

    volume: str | None
    source_dirs: tuple[str, ...]  # workspace-relative POSIX dirs
    init_service: str | None
    target: str | None  # mount path of the volume in services


@dataclass
class Workspace:
    root: Path
    cargo: CargoWorkspace
    compose: ComposeProject
    dockerfiles: dict[Path, Dockerfile]
    ignores: dict[Path, DockerIgnore]
    builds: dict[str, ServiceBuild]
    packs: PacksLayout
    environ: Mapping[str, str] | None = None
    flavour: int | None = None
    generation: int = 0  # bumped by every reload that changed the model
    file_digests: dict[str, tuple[int, int, int, str]] = field(default_factory=dict)
    _stat: dict[Path, tuple[int, int]] = field(default_factory=dict)
    _index: object | None = None
    _resolve_caches: dict[Path, ResolveCache] = field(default_factory=dict)

    # --- loading ------------------------------------------------------------------------------

    @classmethod
    def load(
        cls, root: Path | str, environ: Mapping[str, str] | None = None, flavour: int | None = None
    ) -> Workspace:
        """Read the whole workspace. Raises :class:`InputError` for malformed TOML/YAML/Dockerfiles."""
        root = Path(root).resolve()
        cargo = load_cargo(root)
        compose = load_compose(root, environ=environ, flavour=flavour)
        ws = cls(
            root=root,
            cargo=cargo,
            compose=compose,
            dockerfiles={},
            ignores={},
            builds={},
            packs=_packs_layout(root, compose),
            environ=environ,
            flavour=compose.flavour,
        )
        ws._rebuild_builds()
        return ws

    def _dockerfile(self, path: Path) -> Dockerfile | None:
        if path in self.dockerfiles:
            return self.dockerfiles[path]
        if not path.is_file():
            return None
        df = parse(path)
        self.dockerfiles[path] = df
        self._remember(path)
        return df

    def _ignore(self, context: Path) -> DockerIgnore:
        ig = self.ignores.get(context)
        if ig is None:
            ig = DockerIgnore.load(context)
            self.ignores[context] = ig
            self._remember(context / ".dockerignore")
        return ig

    def _remember(self, path: Path) -> None:
        try:
            st = path.stat()
            self._stat[path] = (st.st_size, st.st_mtime_ns)
        except OSError:
            self._stat[path] = (-1, -1)

    def _make_build(
        self,
        name: str,
        context: Path,
        dockerfile: Path,
        args: Mapping[str, str],
        target: str | None,
        svc: ComposeService | None,
    ) -> ServiceBuild:
        df = self._dockerfile(dockerfile)
        self._ignore(context)
        if df is None:
            return ServiceBuild(name, context, dockerfile, None, svc, problem="Dockerfile not found")
        cache = self._resolve_caches.setdefault(dockerfile, ResolveCache())
        return ServiceBuild(name, context, dockerfile, resolve(df, args, target, cache), svc)

    def _rebuild_builds(self, only_dockerfiles: set[Path] | None = None) -> None:
        """(Re)resolve the builds, all of them or only those of ``only_dockerfiles``."""
        plans_cache: dict[tuple[Path, tuple[tuple[str, str], ...], str | None], BuildPlan | None] = {}
        self._resolve_caches = {}  # instruction expansions shared by the services of one Dockerfile
        builds: dict[str, ServiceBuild] = {}
        for name, svc in self.compose.services.items():
            if svc.build is None:
                continue
            b = svc.build
            old = self.builds.get(name)
            if (
                only_dockerfiles is not None
                and old is not None
                and old.dockerfile not in only_dockerfiles
                and old.compose == svc
            ):
                builds[name] = old
                continue
            key = (b.dockerfile, tuple(sorted(b.args.items())), b.target)
            if key in plans_cache:
                plan = plans_cache[key]
                builds[name] = ServiceBuild(
                    name, b.context, b.dockerfile, plan, svc, None if plan else "Dockerfile not found"
                )
                continue
            builds[name] = self._make_build(name, b.context, b.dockerfile, b.args, b.target, svc)
            plans_cache[key] = builds[name].plan
        pb = _pack_binaries_dockerfile(self.root, self.compose)
        if pb is not None:
            old = self.builds.get(PACK_BINARIES)
            if only_dockerfiles is not None and old is not None and pb not in only_dockerfiles:
                builds[PACK_BINARIES] = old
            else:
                builds[PACK_BINARIES] = self._make_build(PACK_BINARIES, self.root, pb, {}, None, None)
        self.builds = builds
        self._index = None

    # --- queries ------------------------------------------------------------------------------

    def rel(self, path: Path | str) -> str | None:
        """``path`` (absolute or root-relative) as a root-relative POSIX path; ``None`` if outside.

        String operations only: impact calls this for every changed path (10,000 of them).
        """
        s = os.fspath(path)
        if not s.startswith("/") and _CLEAN_REL.match(s):
            return s  # already a clean relative path: the common case, skip normpath
        root = str(self.root)
        s = os.path.normpath(s if os.path.isabs(s) else os.path.join(root, s))
        if s == root:
            return "."
        if s.startswith(root + os.sep):
            return s[len(root) + 1 :].replace(os.sep, "/")
        return None

    @property
    def service_builds(self) -> dict[str, ServiceBuild]:
        return {k: v for k, v in self.builds.items() if k != PACK_BINARIES}

    def definition_files(self) -> set[Path]:
        """The files the model itself is derived from (reloading any of them changes the model)."""
        files = {self.compose.file, self.root / ".env", self.cargo.manifest, self.root / "Cargo.lock"}
        files.update(c.manifest for c in self.cargo.members.values())
        files.update(b.dockerfile for b in self.builds.values())
        files.update(ctx / ".dockerignore" for ctx in self.ignores)
        return files

    # --- incremental reload ------------------------------------------------------------------

    def reload(self, paths: Iterable[Path | str]) -> set[str]:
        """Apply file changes; returns what was redone (``{"cargo", "crate", "compose", ...}``).

        Only files the model is derived from matter; sources only invalidate file digests
        (which are keyed by size and mtime, so even that happens lazily).
        """
        redo: set[str] = set()
        dockerfiles: set[Path] = set()
        crates: set[str] = set()
        for raw in paths:
            p = Path(raw)
            p = Path(os.path.normpath(p if p.is_absolute() else self.root / p))
            rel = self.rel(p)
            if rel is None:
                continue
            name = p.name
            if p == self.cargo.manifest:
                redo.add("cargo")
            elif name == "Cargo.lock" and p.parent == self.root:
                redo.add("lock")
            elif name == "Cargo.toml":
                crate_dir = Path(rel).parent.as_posix()
                if crate_dir in self.cargo.members and (p.is_file()):
                    crates.add(crate_dir)
                elif crate_dir in self.cargo.members or _matches_member(self.cargo, crate_dir):
                    redo.add("cargo")  # a member appeared or vanished: re-expand the member list
            elif p == self.compose.file or (p.parent == self.root and name in (".env", *_COMPOSE_NAMES)):
                redo.add("compose")
            elif name == ".dockerignore":
                if p.parent in self.ignores:
                    self.ignores[p.parent] = DockerIgnore.load(p.parent)
                    self._remember(p)
                    redo.add("dockerignore")
            elif any(p == b.dockerfile for b in self.builds.values()) or _is_dockerfile_name(name):
                if p in self.dockerfiles or any(p == b.dockerfile for b in self.builds.values()):
                    self.dockerfiles.pop(p, None)
                    dockerfiles.add(p)
                elif "pack" in name:
                    dockerfiles.add(p)
            elif rel.endswith(".rs") and "/src/" in f"/{rel}":
                # a new/removed src/main.rs or src/bin/*.rs changes a crate's binaries
                crate_dir = rel.split("/src/", 1)[0] if not rel.startswith("src/") else "."
                parts = rel.split("/")
                if crate_dir in self.cargo.members and (
                    rel.endswith("src/main.rs") or rel.endswith("src/lib.rs") or "bin" in parts
                ):
                    crate = self.cargo.members[crate_dir]
                    fresh = load_crate(self.root, crate_dir, self.cargo.workspace_path_deps)
                    if (fresh.bins, fresh.has_lib) != (crate.bins, crate.has_lib):
                        self.cargo.members[crate_dir] = fresh
                        redo.add("crate")
        if "cargo" in redo:
            self._reload_cargo()
        elif crates:
            for d in crates:
                manifest = self.root / d / "Cargo.toml"
                if manifest.is_file():
                    self.cargo.members[d] = load_crate(self.root, d, self.cargo.workspace_path_deps)
                    st = manifest.stat()
                    self.cargo.manifest_stats[d] = (st.st_size, st.st_mtime_ns)
                else:
                    self.cargo.members.pop(d, None)
            redo.add("crate")
        if "lock" in redo:
            lock = self.root / "Cargo.lock"
            v = read_toml(lock).get("version") if lock.is_file() else None
            self.cargo.lock_version = v if isinstance(v, int) else (1 if lock.is_file() else None)
        if "compose" in redo:
            self.compose = load_compose(self.root, environ=self.environ, flavour=self.flavour)
            self.packs = _packs_layout(self.root, self.compose)
            self._rebuild_builds()
        elif dockerfiles:
            redo.add("dockerfile")
            self._rebuild_builds(only_dockerfiles=dockerfiles)
        elif "dockerignore" in redo:
            self._index = None
        if redo:
            self.generation += 1
        return redo

    def _reload_cargo(self) -> None:
        """Re-read the root manifest; member manifests whose size and mtime are unchanged are reused."""
        self.cargo = load_cargo(self.root, previous=self.cargo)


_CLEAN_REL = re.compile(r"^(?!(?:.*/)?\.\.?(?:/|$))[^/]+(?:/[^/]+)*$")
_COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


def _is_dockerfile_name(name: str) -> bool:
    return name == "Dockerfile" or name.startswith("Dockerfile.") or name.endswith(".Dockerfile")


def _matches_member(cargo: CargoWorkspace, crate_dir: str) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(crate_dir, pat.rstrip("/")) for pat in cargo.member_patterns)


def _packs_layout(root: Path, compose: ComposeProject) -> PacksLayout:
    """Find the packs volume: a named volume mounted at a ``.../packs`` path, and the service filling it."""
    volume: str | None = None
    target: str | None = None
    for svc in compose.services.values():
        for m in svc.volumes:
            if (
                m.type == "volume"
                and m.source
                and (m.source in compose.volumes)
                and ("pack" in m.source or m.target.rstrip("/").endswith("packs"))
            ):
                volume, target = m.source, m.target
                break
        if volume:
            break
    init: str | None = None
    sources: list[str] = []
    if volume:
        for name, svc in compose.services.items():
            if any(m.type == "volume" and m.source == volume and not m.read_only for m in svc.volumes):
                binds = [m for m in svc.volumes if m.type == "bind" and m.source]
                if binds:
                    init = init or name
                    for m in binds:
                        assert m.source is not None
                        try:
                            sources.append(Path(m.source).relative_to(root).as_posix())
                        except ValueError:
                            continue
    if not sources and (root / "packs").is_dir():
        sources.append("packs")
    return PacksLayout(volume, tuple(dict.fromkeys(sources)), init, target)


def _pack_binaries_dockerfile(root: Path, compose: ComposeProject) -> Path | None:
    """The Dockerfile that builds pack binaries (``docker/Dockerfile.pack-binaries`` style), if any."""
    used = {s.build.dockerfile for s in compose.services.values() if s.build}
    for d in (root / "docker", root):
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if _is_dockerfile_name(p.name) and "pack" in p.name.lower() and p not in used and p.is_file():
                return p
    return None


def timed_load(root: Path | str, **kw: object) -> tuple[Workspace, float]:
    """Load and return the seconds it took (for benches and the TUI's status line)."""
    t0 = time.perf_counter()
    ws = Workspace.load(root, **kw)  # type: ignore[arg-type]
    return ws, time.perf_counter() - t0


__all__ = ["PACK_BINARIES", "InputError", "PacksLayout", "ServiceBuild", "Workspace", "timed_load"]
