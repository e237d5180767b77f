"""Per-step digests of what enters each build step, cumulative like BuildKit's cache keys.

``fingerprint(ws, service)`` gives, for every step of the service's plan, a key that changes
exactly when BuildKit's cache key for that step would (as measured, see
``shared/reference/buildkit-cache-rules.md``):

* ``COPY``/``ADD`` from the context: the instruction (sources, destination, flags, ARGs in its
  path expanded) plus the *content and mode* of every file it selects after ``.dockerignore``
  (not the mtime: ``touch`` changes nothing). ARG values not in the path do not enter, so
  identical steps of two services have identical keys (BuildKit shares them).
* ``RUN``: the instruction text plus the values of the ARGs declared in its stage (a ``RUN`` after
  ``ARG SERVICE`` is keyed by SERVICE's value even if the command never uses it), ENV, mounts.
* ``COPY --from=stage`` / ``RUN --mount=from=stage`` / ``FROM stage``: the key of that stage's last step.
* Each key chains the previous step's key, so a step misses when anything before it did.

Store a service's fingerprint at each successful build; ``first_miss(old, new, cached)`` then
names the first step that will run, where ``cached`` is the set of keys any service built
recently (so a ``COPY`` refreshed by another service's build counts as cached).
File content digests are cached in ``Workspace.file_digests`` by (size, mtime_ns, mode).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from attune_console.core.dockerfile import BuildPlan, Step
from attune_console.core.dockerignore import DockerIgnore
from attune_console.core.model import Workspace

_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class StepPrint:
    """One step's identity and cumulative key."""

    stage: str
    instruction: str  # as BuildKit names it (ARG values substituted)
    file: str  # workspace-relative Dockerfile
    line: int
    key: str  # cumulative digest: equal keys <=> BuildKit finds the step cached
    arg_dependent: bool  # the key depends on an ARG value somewhere in its chain (not shareable)

    @property
    def display(self) -> str:
        return f"{self.stage}: {self.instruction}"


@dataclass(frozen=True)
class ServiceFingerprint:
    service: str
    steps: tuple[StepPrint, ...]

    def keys(self) -> set[str]:
        return {s.key for s in self.steps}

    def to_json(self) -> str:
        return json.dumps({"service": self.service, "steps": [asdict(s) for s in self.steps]})

    @classmethod
    def from_json(cls, text: str | Mapping[str, object]) -> ServiceFingerprint:
        data = json.loads(text) if isinstance(text, str) else text
        assert isinstance(data, Mapping)
        steps = data.get("steps")
        assert isinstance(steps, list)
        return cls(str(data["service"]), tuple(StepPrint(**s) for s in steps))


def _h(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


class _ContentHasher:
    """Content+mode digests of context selections, memoised per fingerprint run."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.cache = ws.file_digests
        self.memo: dict[tuple[Path, str], str] = {}

    def file_digest(self, path: Path, st: os.stat_result) -> str:
        key = str(path)
        hit = self.cache.get(key)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns and hit[2] == st.st_mode:
            return hit[3]
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as exc:
            return f"unreadable:{exc.errno}"
        digest = h.hexdigest()
        self.cache[key] = (st.st_size, st.st_mtime_ns, st.st_mode, digest)
        return digest

    def _entry(self, abs_path: Path, rel: str, st: os.stat_result) -> str:
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            return f"L {rel} {os.readlink(abs_path)}"
        if stat.S_ISDIR(st.st_mode):
            return f"D {rel} {mode:o}"
        return f"F {rel} {mode:o} {self.file_digest(abs_path, st)}"

    def _walk(self, context: Path, ignore: DockerIgnore, top_rel: str) -> Iterable[str]:
        """Entries under ``top_rel`` (context-relative), pruned as docker's walk prunes them."""
        stack = [top_rel]
        while stack:
            d = stack.pop()
            try:
                entries = sorted(os.scandir(context / d), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                rel = f"{d}/{e.name}" if d else e.name
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if not ignore.excluded(rel):
                        yield self._entry(Path(e.path), rel, st)
                    if ignore.may_include_below(rel):
                        stack.append(rel)
                elif not ignore.excluded(rel):
                    yield self._entry(Path(e.path), rel, st)

    def selection(self, context: Path, ignore: DockerIgnore, src: str) -> str:
        """Digest of what ``COPY src`` takes from ``context`` (file, directory tree or glob)."""
        memo_key = (context, src)
        if memo_key in self.memo:
            return self.memo[memo_key]
        parts = [p for p in src.split("/") if p]
        matches = self._glob(context, parts) if any(c in src for c in _GLOB) else ["/".join(parts)]
        lines: list[str] = []
        for rel in matches:
            path = context / rel if rel else context
            if not _inside(context, path):
                lines.append(f"X {rel} outside the context")
                continue
            try:
                st = path.lstat()
            except OSError:
                lines.append(f"M {rel}")  # missing: BuildKit fails the step
                continue
            if rel and ignore.excluded(rel) and not stat.S_ISDIR(st.st_mode):
                lines.append(f"M {rel}")
                continue
            if stat.S_ISDIR(st.st_mode):
                lines.append(f"D {rel} {stat.S_IMODE(st.st_mode):o}")
                lines.extend(self._walk(context, ignore, rel))
            else:
                lines.append(self._entry(path, rel, st))
        digest = _h(*lines)
        self.memo[memo_key] = digest
        return digest

    def _glob(self, context: Path, parts: list[str]) -> list[str]:
        found = [""]
        for p in parts:
            nxt: list[str] = []
            for base in found:
                if not any(c in p for c in _GLOB):
                    nxt.append(f"{base}/{p}" if base else p)
                    continue
                try:
                    names = sorted(os.listdir(context / base if base else context))
                except OSError:
                    continue
                nxt.extend(f"{base}/{n}" if base else n for n in names if fnmatch.fnmatchcase(n, p))
            found = nxt
        return [f for f in found if (context / f).exists() or (context / f).is_symlink()]


def _inside(root: Path, p: Path) -> bool:
    try:
        Path(os.path.realpath(p)).relative_to(os.path.realpath(root))
    except ValueError:
        return False
    return True


def plan_fingerprint(
    ws: Workspace,
    name: str,
    plan: BuildPlan,
    context: Path,
    base_ids: Mapping[str, str] | None = None,
    hasher: _ContentHasher | None = None,
) -> ServiceFingerprint:
    """Fingerprint of one resolved plan (see the module docstring for what enters each key)."""
    hasher = hasher or _ContentHasher(ws)
    ignore = ws.ignores.get(context) or DockerIgnore.load(context)
    base_ids = base_ids or {}
    last: dict[int, tuple[str, bool]] = {}  # stage -> (key of its last step, arg dependent)
    prints: list[StepPrint] = []
    for step in plan.steps:
        prev, dep = last.get(step.stage, ("", False))
        key, own_dep = _step_key(step, prev, last, hasher, context, ignore, base_ids)
        dep = dep or own_dep
        if step.keyword == "FROM" and step.from_stage is not None:
            dep = last.get(step.from_stage, ("", False))[1]
        elif step.from_stage is not None or step.mount_stages:
            srcs = ([step.from_stage] if step.from_stage is not None else []) + list(step.mount_stages)
            dep = dep or any(last.get(s, ("", False))[1] for s in srcs)
        last[step.stage] = (key, dep)
        prints.append(
            StepPrint(
                stage=step.stage_label,
                instruction=step.name or step.instr.text,
                file=ws.rel(step.instr.file) or str(step.instr.file),
                line=step.instr.line,
                key=key,
                arg_dependent=dep,
            )
        )
    return ServiceFingerprint(name, tuple(prints))


def _step_key(
    step: Step,
    prev: str,
    last: Mapping[int, tuple[str, bool]],
    hasher: _ContentHasher,
    context: Path,
    ignore: DockerIgnore,
    base_ids: Mapping[str, str],
) -> tuple[str, bool]:
    kw = step.keyword
    if kw == "FROM":
        if step.from_stage is not None:
            return last.get(step.from_stage, ("", False))[0], False
        ref = step.from_image or ""
        return _h("FROM", ref, base_ids.get(ref, "")), False
    if kw == "WORKDIR":
        return _h(prev, "WORKDIR", step.workdir), False
    if kw in ("COPY", "ADD"):
        if step.from_stage is not None:
            inp = last.get(step.from_stage, ("", False))[0]
        elif step.from_image is not None:
            inp = "image:" + step.from_image + ":" + base_ids.get(step.from_image, "")
        else:
            inp = _h(*(hasher.selection(context, ignore, s) for s in step.sources))
        return _h(prev, step.expanded, inp), step.uses_args
    # RUN: text, ARG values declared in the stage, ENV, mounts and the stages they read
    mounts = [last.get(s, ("", False))[0] for s in step.mount_stages]
    env = json.dumps([list(step.arg_env), list(step.env), step.workdir])
    return _h(prev, step.instr.rest, step.expanded, env, *mounts), bool(step.arg_env)


def fingerprint(ws: Workspace, service: str, base_ids: Mapping[str, str] | None = None) -> ServiceFingerprint:
    """The fingerprint of ``service``'s build as the workspace is on disk now.

    ``base_ids`` maps base image references (``FROM``/``--from`` images) to image IDs when the
    caller knows them, so a re-made base image changes every key. Raises ``KeyError`` for an
    unknown service and ``ValueError`` when its Dockerfile is missing.
    """
    b = ws.builds[service]
    if b.plan is None:
        raise ValueError(f"{service}: {b.problem or 'no build plan'}")
    return plan_fingerprint(ws, service, b.plan, b.context, base_ids)


def fingerprints(ws: Workspace, base_ids: Mapping[str, str] | None = None) -> dict[str, ServiceFingerprint]:
    """Fingerprints of every build, sharing one content hasher (shared sources are hashed once)."""
    hasher = _ContentHasher(ws)
    out: dict[str, ServiceFingerprint] = {}
    for name, b in ws.builds.items():
        if b.plan is not None:
            out[name] = plan_fingerprint(ws, name, b.plan, b.context, base_ids, hasher)
    return out


def known_keys(prints: Iterable[ServiceFingerprint | None]) -> set[str]:
    """The union of the step keys of ``prints``: pass the fingerprints of every service's last
    successful build(s) as ``cached_keys`` to :func:`first_miss` (BuildKit's cache is shared)."""
    keys: set[str] = set()
    for fp in prints:
        if fp is not None:
            keys |= fp.keys()
    return keys


def first_miss(
    old: ServiceFingerprint | None, new: ServiceFingerprint, cached_keys: Collection[str] = ()
) -> StepPrint | None:
    """The first step of ``new`` (file order) whose key is neither in ``old`` nor in ``cached_keys``.

    ``cached_keys`` is the union of the keys of every service's recent builds: BuildKit shares
    a step between services when its key is equal, which happens for steps that do not depend
    on ARG values (the planner's ``COPY`` steps). ``old`` ``None`` (never built) misses at once
    unless the cache knows the steps.
    """
    known = set(cached_keys)
    if old is not None:
        known |= old.keys()
    for s in new.steps:
        if s.key not in known:
            return s
    return None
