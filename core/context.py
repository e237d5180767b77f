"""The build context as a deterministic, streamed GNU tar.

Why GNU and not PAX: the session-less Engine API ``/build`` (BuildKit, ``version=2``) reads the first
member of a PAX tar's extended header as the Dockerfile; GNU long-name records do not confuse it.

Why deterministic: BuildKit keys ``COPY`` steps by content checksums of what it extracted, so an
unchanged tree must produce the same members with the same metadata. Members are sorted by path;
uid/gid are 0 with empty owner names; modes come from the file (mode is part of the cache key, as it is
for ``docker build``). Modification times are kept as they are on disk, on purpose: BuildKit ignores
them for cache keys (a ``touch`` stays CACHED), but cargo inside the build compares source mtimes with
its cached ``target/`` fingerprints, so zeroed mtimes would make an edited crate look unchanged and ship
a stale binary.

Why streamed: :func:`iter_context_tar` is a generator of bytes chunks (headers and 1 MiB file pieces),
handed straight to the HTTP request as a chunked body; a multi-GB context never sits in memory.

``.dockerignore`` is applied with the docker SDK's ``docker.utils.build.exclude_paths`` (the same rules
docker-py uses); the Dockerfile and ``.dockerignore`` are always sent, as the docker CLI does.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from docker.utils.build import exclude_paths

from attune_console.core.errors import InputError

__all__ = ["CHUNK", "context_paths", "iter_context_tar", "read_dockerignore"]

CHUNK = 1024 * 1024
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE


def read_dockerignore(root: Path) -> list[str]:
    """The patterns of ``root/.dockerignore`` (comments and blank lines dropped), or ``[]``."""
    path = root / ".dockerignore"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc}", path) from exc
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        patterns.append(line)
    return patterns


def context_paths(root: Path, dockerfile: str = "Dockerfile") -> list[str]:
    """Context-relative POSIX paths (files and directories) to send, sorted, after ``.dockerignore``."""
    patterns = read_dockerignore(root)
    patterns.append("!.dockerignore")
    included = exclude_paths(str(root), patterns, dockerfile=dockerfile)
    return sorted(p.replace(os.sep, "/") for p in included if p and p != ".")


def _tarinfo(full: Path, rel: str) -> tuple[tarfile.TarInfo, Path | None]:
    st = os.lstat(full)
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        return info, None
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(full)
        return info, None
    if stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        return info, full
    raise _Skip  # sockets, fifos, devices: docker build skips them too


class _Skip(Exception):
    pass


def iter_context_tar(
    root: Path, dockerfile: str = "Dockerfile", extra: Mapping[str, Path] | None = None
) -> Iterator[bytes]:
    """Yield the GNU tar of ``root`` (after ``.dockerignore``) in bounded chunks.

    ``dockerfile`` is the Dockerfile path relative to ``root`` (always included, as docker does).
    ``extra`` maps archive names to files outside ``root`` to add (a Dockerfile that lives elsewhere).
    A file that changes size while it is read is padded or truncated to its header size so the archive
    stays valid; the next build sees the new content.
    """
    root = Path(root)
    written = 0
    members: list[tuple[str, Path]] = [(rel, root / rel) for rel in context_paths(root, dockerfile)]
    members += sorted((name, Path(path)) for name, path in (extra or {}).items())
    for rel, full in members:
        try:
            info, source = _tarinfo(full, rel)
        except (_Skip, FileNotFoundError):
            continue
        header = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
        written += len(header)
        yield header
        if source is None:
            continue
        remaining = info.size
        try:
            with open(source, "rb") as fh:
                while remaining > 0:
                    piece = fh.read(min(CHUNK, remaining))
                    if not piece:
                        break
                    remaining -= len(piece)
                    yield piece
        except FileNotFoundError:
            pass
        if remaining > 0:
            yield bytes(remaining)  # file shrank (or vanished) while being read: keep the archive valid
        pad = (-info.size) % _BLOCK
        if pad:
            yield bytes(pad)
        written += info.size + pad
    # End of archive: two zero blocks, then padding to a whole record, as tarfile writes it.
    end = written + 2 * _BLOCK
    yield bytes(2 * _BLOCK + (-end) % _RECORD)
