"""The packs volume: what differs from ``./packs``, and an atomic, incremental refresh.

Why this exists: the seed's workflow refreshes packs by re-running ``init-packs``, a full
copy of every file into the shared volume while services may be reading it. Here the
volume is compared with ``./packs`` by path, kind, mode, size and SHA-256 without
copying it out (a helper container hashes it in place), and a refresh sends only what
changed, as a tar into a staging directory inside the volume, then renames each file
into place (``rename(2)`` within one filesystem is atomic, so a reader sees the old or
the new file, never half of one). Whole packs that appear or disappear are swapped in or
out with one directory rename.

A refresh is a transaction: before anything is renamed, every file it replaces or
removes is hard-linked into the staging directory, and a ``COMMITTING`` marker is
written. If the helper dies midway (killed, daemon restarted, disk full), the next
helper that opens the volume finds the marker without ``DONE`` and rolls the volume
back to exactly its previous content. That recovery runs at once when our own helper
fails, and at the start of every session in case our process died too.

The helper container runs from an image already on the daemon (the workspace's
runtime base from ``.env``, else a service image); nothing is pulled. It needs
``sh``, GNU ``find``, ``xargs``, ``sha256sum`` and ``stat`` (Debian's minbase has them).
A :class:`PacksSession` keeps one helper for its lifetime so repeated status and
refresh calls cost one ``exec`` each (what the console does); it is removed on close.
The volume's state is cached with a signature (a hash of the stat listing of every
entry); a refresh checks the signature inside the volume before committing and falls
back to a full re-hash when something else changed the volume meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

from attune_console.core.compose import ComposeProject
from attune_console.core.errors import AttuneError, InputError
from attune_console.core.services import restart_service, signal_service

MOUNT = "/v"
RESERVED_PREFIX = ".attune-"
TXN_PREFIX = ".attune-txn-"
HELPER_LABEL = "io.attune-console.packs-helper"
RESTART_EXIT_CHANGED = 75
EXIT_LOCKED = 77
EXIT_UPLOAD = 78

After = Literal["none", "hup", "restart"]


class PacksError(AttuneError):
    """The packs volume could not be read or refreshed; the message says why and what to do."""


class PacksBusy(PacksError):
    """Another session is committing to the same volume; nothing was changed."""


# --- entries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One path under the packs root: ``kind`` is ``f`` (file), ``d`` (directory) or ``l`` (symlink).

    ``digest`` is the SHA-256 of a file's content, a symlink's target, or empty for a directory.
    """

    path: str
    kind: str
    mode: int
    size: int
    digest: str

    def same_content(self, other: Entry) -> bool:
        if self.kind != other.kind:
            return False
        if self.kind == "d":
            return True
        if self.kind == "l":
            return self.digest == other.digest
        return self.digest == other.digest and self.size == other.size and self.mode == other.mode


def pack_of(path: str) -> str:
    """The pack a path belongs to: its first component (a file at the root is its own "pack")."""
    return path.split("/", 1)[0]


# --- local tree -------------------------------------------------------------------------------


@dataclass
class HashCache:
    """Digests of local files keyed by what ``stat`` says, so an unchanged tree is not re-read."""

    by_path: dict[str, tuple[int, int, int, int, str]] = field(default_factory=dict)

    def digest(self, full: str, rel: str, st: os.stat_result) -> str:
        key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        hit = self.by_path.get(rel)
        if hit is not None and hit[:4] == key:
            return hit[4]
        h = hashlib.sha256()
        with open(full, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        value = h.hexdigest()
        self.by_path[rel] = (*key, value)
        return value


_BAD_NAME = re.compile(r"[\x00-\x1f\x7f]")


def _valid_volume_path(name: str, rel: str, packs_dir: Path) -> None:
    """Refuse names that cannot be carried through the helper's line-based lists unchanged."""
    bad = _BAD_NAME.search(name)
    if bad is not None:
        raise InputError(
            f"path {rel!r} contains the control character {bad.group()!r}, which is not valid in the packs "
            "volume: rename it",
            packs_dir / rel,
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            "file name is not valid UTF-8 and cannot be written to the packs volume: rename it",
            packs_dir / rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
        ) from None
    if "/" not in rel and name.startswith(RESERVED_PREFIX):
        raise InputError(
            f"names starting with {RESERVED_PREFIX!r} are reserved for attune-console's staging area",
            packs_dir / rel,
        )


def _entry(packs_dir: Path, name: str, rel: str, full: str, st: os.stat_result, cache: HashCache) -> Entry:
    _valid_volume_path(name, rel, packs_dir)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(full)
        resolved = os.path.normpath(os.path.join(os.path.dirname(rel), target))
        if os.path.isabs(target) or resolved == ".." or resolved.startswith("../"):
            raise InputError(
                f"symlink points outside ./packs ({rel} -> {target}); it would dangle in the "
                "volume: copy the file into the pack or make the link relative inside ./packs",
                packs_dir / rel,
            )
        return Entry(rel, "l", 0o777, len(target), hashlib.sha256(target.encode()).hexdigest())
    if stat.S_ISDIR(st.st_mode):
        return Entry(rel, "d", mode, 0, "")
    if stat.S_ISREG(st.st_mode):
        return Entry(rel, "f", mode, st.st_size, cache.digest(full, rel, st))
    raise InputError(
        "not a regular file, directory or symlink (a socket, fifo or device cannot go into the packs volume)",
        packs_dir / rel,
    )


def _walk(packs_dir: Path, rel_dir: str, cache: HashCache, out: dict[str, Entry]) -> None:
    stack = [(rel_dir, str(packs_dir / rel_dir) if rel_dir else str(packs_dir))]
    while stack:
        rel_dir, full_dir = stack.pop()
        with os.scandir(full_dir) as it:
            for de in it:
                rel = f"{rel_dir}/{de.name}" if rel_dir else de.name
                e = _entry(packs_dir, de.name, rel, de.path, de.stat(follow_symlinks=False), cache)
                out[rel] = e
                if e.kind == "d":
                    stack.append((rel, de.path))


def scan_local(packs_dir: Path, cache: HashCache | None = None) -> dict[str, Entry]:
    """Every entry under ``packs_dir`` (relative POSIX paths), hashed.

    Symlinks are kept as links (as ``cp -a`` in init-packs keeps them); one that points
    outside ``packs_dir`` or is absolute would dangle in the volume, so it is refused.
    """
    if not packs_dir.is_dir():
        raise InputError("no packs directory: create ./packs (one folder per pack)", packs_dir)
    out: dict[str, Entry] = {}
    _walk(packs_dir, "", cache if cache is not None else HashCache(), out)
    return out


def normalise_paths(packs_dir: Path, paths: Iterable[str | Path]) -> list[str]:
    """Paths (absolute, or relative to ``packs_dir``) as packs-relative POSIX paths; outside is refused."""
    out = []
    base = packs_dir.resolve()
    for p in paths:
        full = Path(p) if Path(p).is_absolute() else packs_dir / p
        # Resolve the parent only: the path itself may be gone (a deletion) or be a symlink.
        parent = full.parent.resolve()
        rel = (parent / full.name).relative_to(base) if parent.is_relative_to(base) else None
        if rel is None or rel.as_posix() in ("", "."):
            raise InputError("not a path inside ./packs", full)
        out.append(rel.as_posix())
    return sorted(set(out))


def scan_paths(packs_dir: Path, paths: Iterable[str], cache: HashCache | None = None) -> dict[str, Entry]:
    """Like :func:`scan_local`, but only ``paths`` (packs-relative), their subtrees and parents."""
    cache = cache if cache is not None else HashCache()
    out: dict[str, Entry] = {}
    for rel in paths:
        chain = [*_parents(rel), rel]
        for i, q in enumerate(chain):
            full = packs_dir / q
            try:
                st = full.lstat()
            except FileNotFoundError:
                break  # gone: absent here means "delete" in the volume
            e = _entry(packs_dir, full.name, q, str(full), st, cache)
            out[q] = e
            if i == len(chain) - 1 and e.kind == "d":
                _walk(packs_dir, q, cache, out)
    return out


def subset(entries: Mapping[str, Entry], paths: Iterable[str]) -> dict[str, Entry]:
    """The entries at or under ``paths``, plus the parents of those paths."""
    paths = list(paths)
    keep: dict[str, Entry] = {}
    for q in paths:
        for d in _parents(q):
            if d in entries:
                keep[d] = entries[d]
    prefixes = tuple(q + "/" for q in paths)
    wanted = set(paths)
    for p, e in entries.items():
        if p in wanted or p.startswith(prefixes):
            keep[p] = e
    return keep


# --- diff -------------------------------------------------------------------------------------


@dataclass
class PackDiff:
    """What differs in one pack; lists hold files and symlinks (directories follow their content)."""

    pack: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def state(self) -> str:
        if self.added and not (self.changed or self.removed or self.unchanged):
            return "new"
        if self.removed and not (self.added or self.changed or self.unchanged):
            return "removed"
        if self.added or self.changed or self.removed:
            return "changed"
        return "unchanged"

    def as_dict(self) -> dict[str, Any]:
        return {
            "pack": self.pack,
            "state": self.state,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
        }


@dataclass
class PacksStatus:
    """``./packs`` against the volume, pack by pack."""

    project: str
    volume: str
    volume_exists: bool
    packs: list[PackDiff]
    interrupted: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return self.volume_exists and all(p.state == "unchanged" for p in self.packs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "volume": self.volume,
            "volume_exists": self.volume_exists,
            "in_sync": self.in_sync,
            "interrupted_refreshes": self.interrupted,
            "packs": [p.as_dict() for p in self.packs],
        }


def diff(local: Mapping[str, Entry], remote: Mapping[str, Entry]) -> list[PackDiff]:
    """Per-pack added / changed / removed / unchanged, packs sorted by name."""
    packs: dict[str, PackDiff] = {}

    def get(path: str) -> PackDiff:
        name = pack_of(path)
        if name not in packs:
            packs[name] = PackDiff(name)
        return packs[name]

    for path, e in local.items():
        if e.kind == "d" and "/" not in path:
            get(path)
        if e.kind == "d":
            continue
        r = remote.get(path)
        if r is None or r.kind == "d":
            get(path).added.append(path)
        elif e.same_content(r):
            get(path).unchanged += 1
        else:
            get(path).changed.append(path)
    for path, r in remote.items():
        if r.kind == "d":
            if "/" not in path and path not in local:
                get(path)
            continue
        le = local.get(path)
        if le is None or le.kind == "d":
            get(path).removed.append(path)
    for d in packs.values():
        d.added.sort()
        d.changed.sort()
        d.removed.sort()
    return [packs[k] for k in sorted(packs)]


# --- plan -------------------------------------------------------------------------------------


@dataclass
class Plan:
    """The operations of one refresh, in the order the helper applies them."""

    remove: list[str] = field(default_factory=list)  # files/links deleted (backed up first)
    old_packs: list[str] = field(default_factory=list)  # whole packs swapped out
    rmdirs: list[str] = field(default_factory=list)  # directories removed, deepest first
    mkdirs: list[str] = field(default_factory=list)  # directories created, parents first
    put: list[str] = field(default_factory=list)  # files/links renamed into place
    new_packs: list[str] = field(default_factory=list)  # whole packs swapped in

    @property
    def empty(self) -> bool:
        return not (self.remove or self.old_packs or self.rmdirs or self.mkdirs or self.put or self.new_packs)


def make_plan(local: Mapping[str, Entry], remote: Mapping[str, Entry]) -> Plan:
    plan = Plan()
    local_packs = {p for p, e in local.items() if "/" not in p and e.kind == "d"}
    remote_packs = {p for p, e in remote.items() if "/" not in p and e.kind == "d"}
    new_packs = local_packs - remote_packs
    old_packs = remote_packs - local_packs
    plan.new_packs = sorted(new_packs)
    plan.old_packs = sorted(old_packs)

    def inside(path: str, packs: set[str]) -> bool:
        return (pack_of(path) in packs and "/" in path) or path in packs

    for path, r in remote.items():
        if inside(path, old_packs):
            continue
        le = local.get(path)
        if r.kind == "d":
            if le is None or le.kind != "d":
                plan.rmdirs.append(path)
        elif le is None or le.kind != r.kind:
            plan.remove.append(path)
    for path, e in local.items():
        if inside(path, new_packs):
            continue
        rr = remote.get(path)
        if e.kind == "d":
            if rr is None or rr.kind != "d":
                plan.mkdirs.append(path)
        elif rr is None or not e.same_content(rr):
            plan.put.append(path)
    plan.remove.sort()
    plan.rmdirs.sort(key=lambda p: (-p.count("/"), p))
    plan.mkdirs.sort(key=lambda p: (p.count("/"), p))
    plan.put.sort()
    return plan


def _limit(plan: Plan, paths: list[str]) -> Plan:
    """Keep removals of directories and packs to those at or under ``paths`` (parents are context only)."""
    prefixes = tuple(p + "/" for p in paths)
    wanted = set(paths)

    def under(p: str) -> bool:
        return p in wanted or p.startswith(prefixes)

    plan.rmdirs = [d for d in plan.rmdirs if under(d)]
    plan.old_packs = [d for d in plan.old_packs if under(d)]
    return plan


# --- the helper's shell scripts -------------------------------------------------------------

# One stat line per entry; its SHA-256 is the volume's signature.
_LISTING = "find . -mindepth 1 -path './.attune-*' -prune -o -printf '%y %m %s %T@ %i\\0%P\\0%l\\0'"

# $1: the signature of the volume's listing when its hashes were last recorded (host side, see
# :class:`ManifestStore`), or "-". While the listing still has that signature, the hashes are
# current and the volume is not read again; otherwise every file is hashed.
STATUS_SCRIPT = f"""
cd {MOUNT} || exit 3
for t in ./.attune-txn-*; do [ -d "$t" ] && printf '%s\\n' "${{t#./}}" >&2; done
{_LISTING} > /tmp/attune-listing || exit 5
cat /tmp/attune-listing
printf 'END\\0'
sig=$(sha256sum < /tmp/attune-listing | cut -c1-64)
if [ "$1" = "$sig" ]; then
  echo "hashes from the manifest" >&2
else
  find . -mindepth 1 -path './.attune-*' -prune -o -type f -print0 | xargs -0 -r sha256sum -z
fi
"""

SIGNATURE_SCRIPT = f"""
cd {MOUNT} || exit 3
{_LISTING} | sha256sum | cut -c1-64
"""

# Undo one transaction directory ($1), then delete it. Each step is idempotent, so a
# rollback that is itself interrupted can simply run again.
ROLLBACK_FN = f"""
rollback() {{
  T="{MOUNT}/${{1#./}}"; L="$T/lists"
  if [ -f "$T/COMMITTING" ] && [ ! -f "$T/DONE" ]; then
    while IFS= read -r p; do [ -e "$T/packs/$p" ] || rm -rf "./$p"; done < "$L/newpacks"
    xargs -0 -r rm -f -- < "$L/putnew0"
    [ -f "$T/created" ] && tac "$T/created" | while IFS= read -r d; do rmdir "./$d" 2>/dev/null; done
    [ -f "$T/rmdone" ] && tac "$T/rmdone" | while IFS= read -r d; do
      [ -d "./$d" ] || {{ mkdir "./$d" && chmod --reference="$T/olddirs/$d" "./$d"; }}
    done
    while IFS= read -r p; do [ -e "$T/oldpacks/$p" ] && mv "$T/oldpacks/$p" "./$p"; done < "$L/oldpacks"
    # Put every backed-up inode back (a file not yet replaced is "the same file": mv leaves it).
    i=0
    while IFS= read -r d; do
      i=$((i+1))
      (cd "$T/old/$d" && xargs -0 -r mv -f -t "{MOUNT}/$d" -- < "$L/b.$i") 2>/dev/null
    done < "$L/bdirs"
    echo "rolled back ${{T##*/}}" >&2
  fi
  rm -rf "$T"
}}
"""

# Arguments: the short ids of the other helpers running on this volume. A transaction is named
# after the helper that runs it (``.attune-txn-<helper>-<n>``); one whose helper still runs is in
# progress (another console or CLI) and is left alone.
RECOVER_SCRIPT = f"""
cd {MOUNT} || exit 3
{ROLLBACK_FN}
for t in ./.attune-txn-*; do
  [ -d "$t" ] || continue
  owner=${{t#./.attune-txn-}}; owner=${{owner%%-*}}
  live=no
  for h in "$@"; do [ "$h" = "$owner" ] && live=yes; done
  if [ "$live" = yes ]; then echo "in progress ${{t#./}}" >&2; else rollback "$t"; fi
done
if [ -d ./.attune-lock ]; then
  owner=$(cat ./.attune-lock/owner 2>/dev/null); live=no
  for h in "$@"; do [ "$h" = "$owner" ] && live=yes; done
  [ "$live" = yes ] || rm -rf ./.attune-lock
fi
command -v tar >/dev/null 2>&1 && echo "has tar" >&2
exit 0
"""

# $1: transaction id; $2: expected signature or "-". Files move one directory at a time
# (``mv -t``/``ln -t`` over NUL-separated names): one process per directory, still one
# rename(2) per file.
COMMIT_SCRIPT = f"""
set -u
cd {MOUNT} || exit 3
T="{MOUNT}/.attune-txn-$1"; L="$T/lists"; sig="$2"; me="$3"; shift 3
fail() {{ echo "attune-packs: $*" >&2; exit 4; }}
unlock() {{ [ "$(cat ./.attune-lock/owner 2>/dev/null)" = "$me" ] && rm -rf ./.attune-lock; }}
# One commit at a time per volume: the lock names its helper. A lock held by another helper makes
# this exit {EXIT_LOCKED} (staging kept); the session checks whether that helper still runs and
# either gives up or runs again with "$4" = that owner: a stale lock (its helper died; recovery
# undoes its transaction) is then taken over.
if ! mkdir ./.attune-lock 2>/dev/null; then
  owner=$(cat ./.attune-lock/owner 2>/dev/null)
  if [ "$owner" != "$me" ] && [ "$owner" != "$1" ]; then echo "$owner" >&2; exit {EXIT_LOCKED}; fi
fi
printf '%s' "$me" > ./.attune-lock/owner || fail "cannot write to the volume"
if [ "$sig" != "-" ]; then
  cur=$({_LISTING} | sha256sum | cut -c1-64)
  if [ "$cur" != "$sig" ]; then
    rm -rf "$T"; unlock; echo "volume changed since it was read" >&2; exit {RESTART_EXIT_CHANGED}
  fi
fi
i=0
while IFS= read -r d; do
  i=$((i+1))
  (cd "./$d" && xargs -0 -r ln -P -t "$T/old/$d" -- < "$L/b.$i") || fail "cannot back up files in $d"
done < "$L/bdirs"
: > "$T/created"; : > "$T/rmdone"
: > "$T/COMMITTING" || fail "cannot write to the volume"
xargs -0 -r rm -f -- < "$L/remove0" || fail "cannot remove files"
while IFS= read -r p; do mv "./$p" "$T/oldpacks/$p" || fail "cannot move pack $p aside"; done < "$L/oldpacks"
while IFS= read -r d; do
  # Intent first, then the act: a kill between the two must not leave an unrecorded change.
  if [ -d "./$d" ]; then printf '%s\\n' "$d" >> "$T/rmdone"; rmdir "./$d" 2>/dev/null; fi
done < "$L/rmdirs"
while IFS= read -r d; do
  if [ ! -d "./$d" ]; then
    printf '%s\\n' "$d" >> "$T/created"
    mkdir "./$d" || fail "cannot create directory $d"
    chmod --reference="$T/new/$d" "./$d"
  fi
done < "$L/mkdirs"
i=0
while IFS= read -r d; do
  i=$((i+1))
  (cd "$T/new/$d" && xargs -0 -r mv -f -t "{MOUNT}/$d" -- < "$L/p.$i") || fail "cannot rename files into $d"
  [ $((i % 100)) -eq 0 ] && echo "committed $i directories" >&2
done < "$L/pdirs"
while IFS= read -r p; do
  mv "$T/packs/$p" "./$p" || fail "cannot move pack $p into place"
done < "$L/newpacks"
: > "$T/DONE"
rm -rf "$T"
unlock
{_LISTING} | sha256sum | cut -c1-64
"""


# The upload and the commit in one exec: the staging tar arrives on stdin ($1: transaction id).
UNTAR_THEN_COMMIT = (
    f"""
if ! tar -x -C {MOUNT} -f - 2>/tmp/attune-tar-err; then
  cat /tmp/attune-tar-err >&2; rm -rf "{MOUNT}/.attune-txn-$1"; exit {EXIT_UPLOAD}
fi
"""
    + COMMIT_SCRIPT
)


# --- remote listing ---------------------------------------------------------------------------


def parse_status_output(raw: bytes, known: Mapping[str, str] | None = None) -> tuple[dict[str, Entry], str]:
    """Parse :data:`STATUS_SCRIPT` output into entries and the volume's signature.

    ``known``: file digests to use when the script printed none (the manifest matched).
    """
    head, sep, tail = raw.partition(b"END\0")
    if not sep:
        raise PacksError("the helper container's listing of the packs volume was cut short")
    signature = hashlib.sha256(head).hexdigest()
    fields = head.split(b"\0")
    meta: dict[str, tuple[str, int, int, str]] = {}
    for i in range(0, len(fields) - 2, 3):
        parts = fields[i].split(b" ")
        path = fields[i + 1].decode("utf-8", "surrogateescape")
        kind = parts[0].decode()
        link = fields[i + 2].decode("utf-8", "surrogateescape")
        meta[path] = (kind, int(parts[1], 8), int(parts[2]), link)
    digests: dict[str, str] = dict(known or {}) if not tail else {}
    for rec in tail.split(b"\0"):
        if not rec:
            continue
        digest, _, name = rec.partition(b"  ")
        p = name.decode("utf-8", "surrogateescape")
        digests[p[2:] if p.startswith("./") else p] = digest.decode()
    out: dict[str, Entry] = {}
    for path, (kind, mode, size, link) in meta.items():
        if kind == "f":
            out[path] = Entry(path, "f", mode, size, digests.get(path, ""))
        elif kind == "d":
            out[path] = Entry(path, "d", mode, 0, "")
        elif kind == "l":
            out[path] = Entry(path, "l", 0o777, len(link.encode()), hashlib.sha256(link.encode()).hexdigest())
        else:
            out[path] = Entry(path, kind, mode, size, "")
    return out, signature


# --- tar of a plan ----------------------------------------------------------------------------


def _add_dir(tar: tarfile.TarFile, name: str, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = int(time.time())
    info.uid = info.gid = 0
    tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(time.time())
    info.uid = info.gid = 0
    tar.addfile(info, io.BytesIO(data))


def _add_local(tar: tarfile.TarFile, name: str, full: Path, e: Entry) -> None:
    info = tarfile.TarInfo(name)
    # cp -a in init-packs keeps the owner of the host files; so does the tar.
    st = full.lstat()
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mode = e.mode
    info.mtime = int(st.st_mtime)
    if e.kind == "l":
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(full)
        tar.addfile(info)
    elif e.kind == "d":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = st.st_size
        with open(full, "rb") as fh:
            tar.addfile(info, fh)


def _by_dir(paths: Iterable[str]) -> dict[str, list[str]]:
    """Paths grouped by parent directory ("." for the root), as (dir -> names)."""
    out: dict[str, list[str]] = {}
    for p in paths:
        d, _, name = p.rpartition("/")
        out.setdefault(d or ".", []).append(name)
    return out


def _parents(path: str) -> list[str]:
    parts = PurePosixPath(path).parts[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def apply_plan(remote: Mapping[str, Entry], plan: Plan, local: Mapping[str, Entry]) -> dict[str, Entry]:
    """The volume's entries after ``plan`` succeeds on a volume holding ``remote``."""
    out = dict(remote)
    for p in plan.remove:
        out.pop(p, None)
    for pack in plan.old_packs:
        for p in [p for p in out if p == pack or p.startswith(pack + "/")]:
            del out[p]
    for d in plan.rmdirs:
        out.pop(d, None)
    for p in plan.mkdirs:
        out[p] = local[p]
    for p in plan.put:
        out[p] = local[p]
    for pack in plan.new_packs:
        for p, e in local.items():
            if p == pack or p.startswith(pack + "/"):
                out[p] = e
    return out


def build_tar(
    txn: str,
    plan: Plan,
    packs_dir: Path,
    local: Mapping[str, Entry],
    remote: Mapping[str, Entry],
    out: IO[bytes],
) -> None:
    """Write the staging tree of one transaction (to extract at the volume root) into ``out``."""
    root = f"{TXN_PREFIX}{txn}"

    def lines(items: Iterable[str]) -> bytes:
        return "".join(f"{i}\n" for i in items).encode()

    def nul(items: Iterable[str]) -> bytes:
        return "".join(f"{i}\0" for i in items).encode()

    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        _add_dir(tar, root, 0o700)
        for sub in ("lists", "old", "olddirs", "new", "packs", "oldpacks"):
            _add_dir(tar, f"{root}/{sub}", 0o700)
        touched = sorted(set(plan.put) | set(plan.remove))
        backup = [p for p in touched if p in remote and remote[p].kind != "d"]
        backed = set(backup)
        lists = {
            "oldpacks": plan.old_packs,
            "rmdirs": plan.rmdirs,
            "mkdirs": plan.mkdirs,
            "newpacks": plan.new_packs,
        }
        for name, items in lists.items():
            _add_bytes(tar, f"{root}/lists/{name}", lines(items))
        _add_bytes(tar, f"{root}/lists/remove0", nul(plan.remove))
        _add_bytes(tar, f"{root}/lists/putnew0", nul(p for p in plan.put if p not in backed))
        for prefix, paths in (("b", backup), ("p", plan.put)):
            groups = _by_dir(paths)
            _add_bytes(tar, f"{root}/lists/{prefix}dirs", lines(groups))
            for i, names in enumerate(groups.values(), 1):
                _add_bytes(tar, f"{root}/lists/{prefix}.{i}", nul(names))
        seen: set[str] = set()
        for p in touched:
            for d in _parents(p):
                if d not in seen:
                    seen.add(d)
                    _add_dir(tar, f"{root}/old/{d}", 0o700)
        for d in plan.rmdirs:
            _add_dir(tar, f"{root}/olddirs/{d}", remote[d].mode)
        new_dirs: set[str] = set(plan.mkdirs)
        for p in plan.put:
            new_dirs.update(_parents(p))
        for d in sorted(new_dirs, key=lambda p: (p.count("/"), p)):
            mode = local[d].mode if d in local else 0o755
            _add_dir(tar, f"{root}/new/{d}", mode)
        for p in plan.put:
            _add_local(tar, f"{root}/new/{p}", packs_dir / p, local[p])
        for pack in plan.new_packs:
            members = sorted(
                (p for p in local if p == pack or p.startswith(pack + "/")),
                key=lambda p: (p.count("/"), p),
            )
            for p in members:
                _add_local(tar, f"{root}/packs/{p}", packs_dir / p, local[p])


# --- finding the volume, its image and its services ------------------------------------------


@dataclass(frozen=True)
class PacksTarget:
    """Where ``./packs`` goes: the logical and real volume name and the mount path in services."""

    project: ComposeProject
    logical: str
    volume: str
    packs_dir: Path

    @property
    def mounting_services(self) -> list[str]:
        """Services that mount the volume, except one-shot copiers that also bind ``./packs``."""
        out = []
        for svc in self.project.services.values():
            mounts = [m for m in svc.volumes if m.type == "volume" and m.source == self.logical]
            binds_packs = any(
                m.type == "bind" and m.source and Path(m.source).resolve() == self.packs_dir.resolve()
                for m in svc.volumes
            )
            if mounts and not binds_packs:
                out.append(svc.name)
        return sorted(out)


def find_target(project: ComposeProject) -> PacksTarget:
    """The packs volume: the named volume that the service binding ``./packs`` copies into.

    Falls back to a named volume called like ``*packs*``; raises :class:`InputError` on the
    compose file when neither exists.
    """
    packs_dir = (project.root / "packs").resolve()
    for svc in project.services.values():
        binds = any(
            m.type == "bind" and m.source and Path(m.source).resolve() == packs_dir for m in svc.volumes
        )
        if not binds:
            continue
        for m in svc.volumes:
            if m.type == "volume" and m.source and m.source in project.volumes and not m.read_only:
                return PacksTarget(project, m.source, project.volumes[m.source], packs_dir)
    for logical in sorted(project.volumes):
        if "packs" in logical:
            return PacksTarget(project, logical, project.volumes[logical], packs_dir)
    raise InputError(
        "no packs volume: expected a named volume that a service (like init-packs) fills from ./packs",
        project.file,
    )


def helper_image(client: Any, project: ComposeProject, target: PacksTarget) -> str:
    """An image already on the daemon to run the helper from; never pulls."""
    import docker.errors

    candidates: list[str] = []
    for key in ("RUNTIME_IMAGE", "ATTUNE_HELPER_IMAGE"):
        if project.env.get(key):
            candidates.append(project.env[key])
    for name in target.mounting_services:
        candidates.append(project.services[name].image)
    candidates.extend(s.image for s in project.services.values())
    for name in dict.fromkeys(candidates):
        try:
            client.images.get(name)
            return name
        except docker.errors.ImageNotFound:
            continue
        except docker.errors.APIError:
            continue
    raise PacksError(
        "no local image to run the packs helper from (tried "
        + ", ".join(dict.fromkeys(candidates))
        + "): run demo-workspace/scripts/bootstrap-images.sh or build the services first"
    )


# --- recorded hashes -------------------------------------------------------------------------


@dataclass
class ManifestStore:
    """Content hashes of a volume recorded on the host, with the signature of its listing then.

    Kept outside the volume (services list the volume's root: a state directory there would
    show up as a pack). Keyed by volume name; the listing's signature covers every entry's
    inode and nanosecond mtime, so a re-created volume of the same name does not match. A
    mismatch or a missing/corrupt file only means "hash the volume again".
    """

    directory: Path

    @classmethod
    def default(cls) -> ManifestStore:
        override = os.environ.get("ATTUNE_CONSOLE_STATE_DIR")
        if override:
            base = Path(override)
        else:
            import platformdirs

            base = platformdirs.user_state_path("attune-console")
        return cls(base / "packs-manifests")

    def _path(self, volume: str) -> Path:
        key = hashlib.sha256(volume.encode()).hexdigest()[:16]
        return self.directory / f"{volume[:80]}-{key}.json"

    def load(self, volume: str) -> tuple[str, dict[str, str]] | None:
        try:
            data = json.loads(self._path(volume).read_text())
            sig, files = data["sig"], data["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(sig, str) or not isinstance(files, dict):
            return None
        return sig, {str(k): str(v) for k, v in files.items()}

    def save(self, volume: str, sig: str, entries: Mapping[str, Entry]) -> None:
        files = {p: e.digest for p, e in entries.items() if e.kind == "f"}
        path = self._path(volume)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"volume": volume, "sig": sig, "files": files}))
            os.replace(tmp, path)
        except OSError:
            pass  # only a cache: the next reader hashes the volume


# --- the session ------------------------------------------------------------------------------


@dataclass
class RefreshResult:
    """What a refresh did."""

    status_before: PacksStatus
    plan: Plan
    created_volume: bool
    recovered: list[str]
    services: dict[str, str]
    bytes_sent: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "volume": self.status_before.volume,
            "created_volume": self.created_volume,
            "put": self.plan.put,
            "removed": self.plan.remove,
            "new_packs": self.plan.new_packs,
            "removed_packs": self.plan.old_packs,
            "mkdirs": self.plan.mkdirs,
            "rmdirs": self.plan.rmdirs,
            "bytes_sent": self.bytes_sent,
            "rolled_back": self.recovered,
            "services": self.services,
        }


ProgressFn = Callable[[str, Any], None]


class PacksSession:
    """One helper container on the packs volume, kept for repeated status/refresh calls.

    Use as a context manager; the helper is force-removed on close (and exits on its own
    after ``idle`` seconds if this process dies without closing it).
    """

    def __init__(
        self,
        client: Any,
        project: ComposeProject,
        *,
        image: str | None = None,
        idle: int = 900,
        progress: ProgressFn | None = None,
        manifests: ManifestStore | None = None,
    ) -> None:
        self.client = client
        self.project = project
        self.target = find_target(project)
        self._image = image
        self.idle = idle
        self.progress = progress or (lambda _phase, _data: None)
        self.cache = HashCache()
        self.container: Any = None
        self._remote: dict[str, Entry] | None = None
        self._signature: str | None = None
        self.recovered: list[str] = []
        #: Whether the last listing took the content hashes from the recorded manifest.
        self.used_manifest = False
        self.manifests = manifests if manifests is not None else ManifestStore.default()
        self._pending: tuple[str, dict[str, str]] | None = None
        self._has_tar = False
        self._pending_entries: Mapping[str, Entry] | None = None

    # lifecycle

    def __enter__(self) -> PacksSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.flush()
        c, self.container = self.container, None
        if c is not None:
            import docker.errors

            try:
                c.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                # auto_remove already removing a helper that died: fine, it is going away.
                if exc.status_code != 409:
                    raise

    @property
    def packs_dir(self) -> Path:
        return self.target.packs_dir

    def volume_exists(self) -> bool:
        import docker.errors

        try:
            self.client.volumes.get(self.target.volume)
            return True
        except docker.errors.NotFound:
            return False

    def _create_volume(self) -> None:
        labels = {
            "com.docker.compose.project": self.project.name,
            "com.docker.compose.volume": self.target.logical,
        }
        self.client.volumes.create(name=self.target.volume, labels=labels)

    def _helper(self) -> Any:
        """The running helper, started (and the volume recovered) on first use."""
        if self.container is not None:
            return self.container
        image = self._image or helper_image(self.client, self.project, self.target)
        self._image = image
        name = f"attune-packs-{self.project.name}-{uuid.uuid4().hex[:8]}"
        c = self.client.containers.create(
            image,
            entrypoint=["sleep", str(self.idle)],
            command=[],
            name=name,
            volumes={self.target.volume: {"bind": MOUNT, "mode": "rw"}},
            network_disabled=True,
            user="0:0",
            labels={HELPER_LABEL: self.target.volume},
            auto_remove=True,
        )
        try:
            c.start()
        except Exception:
            c.remove(force=True)
            raise
        self.container = c
        self._recover()
        return c

    def _exec(self, script: str, *args: str) -> tuple[int, bytes, bytes]:
        import docker.errors

        # A helper that is gone before the exec starts (idle timeout, removed by hand) is simply
        # replaced, except for a commit: its upload went to the old one (recovery cleans it up).
        for attempt in range(2):
            c = self._helper()
            try:
                res = c.exec_run(["sh", "-c", script, "sh", *args], demux=True, user="0:0")
                break
            except docker.errors.APIError as exc:
                self.container = None
                gone = isinstance(exc, docker.errors.NotFound) or exc.status_code == 409
                if attempt == 0 and gone and script is not COMMIT_SCRIPT:
                    continue
                raise PacksError(f"the packs helper container stopped: {exc.explanation or exc}") from exc
        out, err = res.output if res.output else (None, None)
        return res.exit_code if res.exit_code is not None else -1, out or b"", err or b""

    def _other_helpers(self) -> list[str]:
        """Short ids of the other helpers running on this volume (other consoles, CLI runs)."""
        mine = self.container.id if self.container is not None else ""
        others = self.client.containers.list(
            filters={"label": f"{HELPER_LABEL}={self.target.volume}", "status": "running"}
        )
        return [c.id[:12] for c in others if c.id != mine]

    def _exec_stdin(self, script: str, data: IO[bytes], *args: str) -> tuple[int, bytes, bytes]:
        """Run ``script`` in the helper with ``data`` on its stdin (one round trip for upload + commit)."""
        import socket

        import docker.errors
        from docker.utils.socket import frames_iter

        c = self._helper()
        api = self.client.api
        try:
            exec_id = api.exec_create(
                c.id, ["sh", "-c", script, "sh", *args], stdin=True, stdout=True, stderr=True, user="0:0"
            )["Id"]
            sock = api.exec_start(exec_id, socket=True)
            raw = getattr(sock, "_sock", sock)
            try:
                while chunk := data.read(1 << 20):
                    raw.sendall(chunk)
                raw.shutdown(socket.SHUT_WR)
                out: list[bytes] = []
                err: list[bytes] = []
                for stream, payload in frames_iter(sock, tty=False):
                    (out if stream == 1 else err).append(payload)
            finally:
                sock.close()
            code = api.exec_inspect(exec_id).get("ExitCode")
        except (docker.errors.APIError, OSError) as exc:
            self.container = None
            raise PacksError(f"the packs helper container stopped: {exc}") from exc
        return code if code is not None else -1, b"".join(out), b"".join(err)

    def _recover(self) -> None:
        code, _out, err = self._exec(RECOVER_SCRIPT, *self._other_helpers())
        self._has_tar = b"has tar" in err
        msgs = [ln for ln in err.decode(errors="replace").splitlines() if ln.startswith("rolled back")]
        self.recovered.extend(m.removeprefix("rolled back ") for m in msgs)
        if code != 0:
            raise PacksError(f"could not recover an interrupted refresh: {err.decode(errors='replace')}")

    def _reset(self) -> None:
        """After a failure: drop the (maybe dead) helper and the cached state, then roll back."""
        self.close()
        self._remote = self._signature = None
        if self.volume_exists():
            self._helper()

    # reading

    def remote_entries(self, *, trust_cache: bool = False) -> tuple[dict[str, Entry], str]:
        """The volume's entries and signature; cached when ``trust_cache`` and nothing changed."""
        if trust_cache and self._remote is not None and self._signature is not None:
            return self._remote, self._signature
        recorded = self._recorded()
        code, out, err = self._exec(STATUS_SCRIPT, recorded[0] if recorded else "-")
        if code != 0:
            raise PacksError(f"listing the packs volume failed: {err.decode(errors='replace').strip()}")
        self.used_manifest = recorded is not None and b"hashes from the manifest" in err
        entries, signature = parse_status_output(
            out, recorded[1] if self.used_manifest and recorded else None
        )
        if not self.used_manifest:
            self._record(signature, entries)
        self._remote, self._signature = entries, signature
        return entries, signature

    def _recorded(self) -> tuple[str, dict[str, str]] | None:
        if self._pending is not None:
            return self._pending
        return self.manifests.load(self.target.volume)

    def _record(self, signature: str, entries: Mapping[str, Entry]) -> None:
        """Remember the volume's hashes with its signature; written to the store on :meth:`close`."""
        self._pending = (signature, {p: e.digest for p, e in entries.items() if e.kind == "f"})
        self._pending_entries = entries

    def flush(self) -> None:
        """Write the recorded hashes to the store now (``close`` does it too)."""
        if self._pending is not None and self._pending_entries is not None:
            self.manifests.save(self.target.volume, self._pending[0], self._pending_entries)
            self._pending_entries = None

    def status(self, local: dict[str, Entry] | None = None) -> PacksStatus:
        if not self.volume_exists():
            local = scan_local(self.packs_dir, self.cache) if local is None else local
            return PacksStatus(self.project.name, self.target.volume, False, diff(local, {}))
        if local is None:
            # Hash ./packs here while the helper hashes the volume (hashlib releases the GIL).
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                scanning = pool.submit(scan_local, self.packs_dir, self.cache)
                remote, _sig = self.remote_entries()
                local = scanning.result()
        else:
            remote, _sig = self.remote_entries()
        return PacksStatus(
            self.project.name, self.target.volume, True, diff(local, remote), list(self.recovered)
        )

    # writing

    def refresh(self, after: After = "none", *, paths: Iterable[str | Path] | None = None) -> RefreshResult:
        """Make the volume equal ``./packs``; atomic per file, all-or-nothing per refresh.

        ``paths`` (packs-relative or absolute) limits the refresh to those files or
        directories, their subtrees and parents: what a file watcher hands over, so the
        rest of the tree is not re-scanned. Without it, the whole tree is compared.
        """
        rels = normalise_paths(self.packs_dir, paths) if paths is not None else None
        if not self.packs_dir.is_dir():
            raise InputError("no packs directory: create ./packs (one folder per pack)", self.packs_dir)
        local = (
            scan_local(self.packs_dir, self.cache)
            if rels is None
            else scan_paths(self.packs_dir, rels, self.cache)
        )
        created = False
        # A running helper has the volume mounted, so it exists; only ask the daemon otherwise.
        if self.container is None and not self.volume_exists():
            self._create_volume()
            created = True
            self._remote, self._signature = {}, None
            if rels is not None:  # a new volume gets everything, as init-packs would copy it
                rels, local = None, scan_local(self.packs_dir, self.cache)
        remote, signature = self.remote_entries(trust_cache=not created)
        for attempt in range(2):
            view = remote if rels is None else subset(remote, rels)
            plan = make_plan(local, view)
            if rels is not None:
                plan = _limit(plan, rels)
            before = PacksStatus(self.project.name, self.target.volume, True, diff(local, view))
            if plan.empty:
                return RefreshResult(before, plan, created, list(self.recovered), {}, 0)
            try:
                code, _err, sent = self._commit(plan, local, view, signature)
            except KeyboardInterrupt:
                # Ctrl-C: stop the helper mid-commit and roll back now rather than at the next run.
                self._after_failure()
                raise
            if code == RESTART_EXIT_CHANGED and attempt == 0:
                self.progress("rescan", None)
                remote, signature = self.remote_entries()
                continue
            break
        services = apply_after(self.client, self.target, after) if after != "none" else {}
        return RefreshResult(before, plan, created, list(self.recovered), services, sent)

    def _commit(
        self, plan: Plan, local: Mapping[str, Entry], remote: Mapping[str, Entry], signature: str | None
    ) -> tuple[int, str, int]:
        import docker.errors

        c = self._helper()
        txn = f"{c.id[:12]}-{uuid.uuid4().hex[:8]}"
        after = apply_plan(self._remote or {}, plan, local)
        with tempfile.SpooledTemporaryFile(max_size=32 << 20) as buf:
            build_tar(txn, plan, self.packs_dir, local, remote, buf)
            sent = buf.tell()
            buf.seek(0)
            self.progress("upload", {"bytes": sent, "files": len(plan.put), "packs": len(plan.new_packs)})
            if self._has_tar:
                self.progress("commit", {"txn": txn, "container": c.id})
                code, out, err = self._exec_commit(txn, signature, upload=buf)
                if code == EXIT_UPLOAD:
                    text = err.decode(errors="replace").strip()
                    raise PacksError(_explain_upload_error(text, self.target.volume))
            else:  # no tar in the helper image: the daemon extracts the upload
                try:
                    ok = c.put_archive(MOUNT, buf)
                except docker.errors.APIError as exc:
                    self._after_failure()
                    raise PacksError(_explain_api_error(exc, self.target.volume)) from exc
                if not ok:
                    self._after_failure()
                    raise PacksError(f"the daemon refused the upload into volume {self.target.volume}")
                self.progress("commit", {"txn": txn, "container": c.id})
                code, out, err = self._exec_commit(txn, signature)
        text = err.decode(errors="replace").strip()
        if code == RESTART_EXIT_CHANGED:
            return code, text, sent
        if code != 0:
            self._after_failure()
            lines = [ln for ln in text.splitlines() if not ln.startswith("committed ")]
            why = lines[-1] if lines else f"exit code {code}"
            raise PacksError(
                f"refresh of volume {self.target.volume} failed ({why}); the volume was rolled back to its "
                "previous content"
            )
        self._remote = after
        self._signature = out.decode().strip() or None
        if self._signature:
            self._record(self._signature, after)
        self.progress("done", {"txn": txn})
        return 0, text, sent

    def _exec_commit(
        self, txn: str, signature: str | None, upload: IO[bytes] | None = None
    ) -> tuple[int, bytes, bytes]:
        try:
            me = self._helper().id[:12]
            if upload is not None:
                code, out, err = self._exec_stdin(UNTAR_THEN_COMMIT, upload, txn, signature or "-", me, "-")
            else:
                code, out, err = self._exec(COMMIT_SCRIPT, txn, signature or "-", me, "-")
            if code == EXIT_LOCKED:
                owner = (err.decode(errors="replace").strip().splitlines() or [""])[-1]
                if owner not in self._other_helpers():  # its helper died: the lock is stale
                    code, out, err = self._exec(COMMIT_SCRIPT, txn, signature or "-", me, owner)
                if code == EXIT_LOCKED:
                    self._exec('rm -rf "$1"', f"{MOUNT}/{TXN_PREFIX}{txn}")
                    raise PacksBusy(
                        f"another refresh of this volume is running (helper {owner}): nothing was changed; "
                        "refresh again when it is done"
                    )
            return code, out, err
        except PacksBusy:
            raise
        except PacksError:
            self._after_failure()
            raise PacksError(
                f"the packs helper container died during the refresh of {self.target.volume}; the volume was "
                "rolled back to its previous content"
            ) from None

    def _after_failure(self) -> None:
        try:
            self._reset()
        except Exception as exc:  # the original error matters more; say recovery is pending
            raise PacksError(
                f"refresh failed and the rollback could not run yet ({exc}); the next status or "
                "refresh rolls the volume back"
            ) from exc


def _explain_upload_error(text: str, volume: str) -> str:
    # GNU tar reports a short write on a full disk as "Wrote only N of M bytes".
    if "no space left" in text.lower() or "wrote only" in text.lower():
        return f"the disk holding volume {volume} is full; nothing was changed ({text})"
    return f"upload into volume {volume} failed; nothing was changed ({text})"


def _explain_api_error(exc: Any, volume: str) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    if "no space left" in text.lower():
        return f"the disk holding volume {volume} is full; nothing was changed ({text})"
    return f"upload into volume {volume} failed; nothing was changed ({text})"


def apply_after(client: Any, target: PacksTarget, after: After) -> dict[str, str]:
    """SIGHUP or restart the running containers of every service that mounts the volume."""
    out: dict[str, str] = {}
    for name in target.mounting_services:
        if after == "hup":
            out[name] = signal_service(client, target.project.name, name, "SIGHUP")
        elif after == "restart":
            out[name] = restart_service(client, target.project.name, name)
    return out


# --- async wrappers ---------------------------------------------------------------------------


async def status_async(client: Any, project: ComposeProject) -> PacksStatus:
    """:meth:`PacksSession.status` with a one-shot helper, off the event loop."""

    def run() -> PacksStatus:
        with PacksSession(client, project) as s:
            return s.status()

    return await asyncio.to_thread(run)


async def refresh_async(client: Any, project: ComposeProject, after: After = "none") -> RefreshResult:
    """:meth:`PacksSession.refresh` with a one-shot helper, off the event loop."""

    def run() -> RefreshResult:
        with PacksSession(client, project) as s:
            return s.refresh(after)

    return await asyncio.to_thread(run)


class AsyncPacksSession:
    """A :class:`PacksSession` for asyncio code (the console): one helper for the session's life.

    Calls run in a worker thread, one at a time (a lock), so the event loop never blocks and two
    refreshes never interleave. ``aclose()`` removes the helper.
    """

    def __init__(self, client: Any, project: ComposeProject, **kwargs: Any) -> None:
        self.sync = PacksSession(client, project, **kwargs)
        self._lock = asyncio.Lock()

    async def status(self) -> PacksStatus:
        async with self._lock:
            return await asyncio.to_thread(self.sync.status)

    async def refresh(
        self, after: After = "none", paths: Iterable[str | Path] | None = None
    ) -> RefreshResult:
        async with self._lock:
            return await asyncio.to_thread(lambda: self.sync.refresh(after, paths=paths))

    async def aclose(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self.sync.close)
