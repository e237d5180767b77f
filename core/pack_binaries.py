"""Pack binaries: build ``docker/Dockerfile.pack-binaries``, take the binaries out, ship them.

The seed does this with ``docker build``, ``docker create``, ``docker cp``, ``docker rm``
and ``chmod +x``; a failure between ``create`` and ``rm`` leaves a container behind and
a half-copied file in ``packs/``. Here the binaries come out through the SDK's archive
API from a container that is created, never started, and removed in ``finally``; each
binary is written next to its destination and renamed over it with mode 0755, so
``packs/<pack>/sensors/`` never holds half a binary. Then the packs volume is refreshed.

The image is normally built by the build engine (so its progress shows like any other
build) and handed over as an image id. Without one, :func:`build_image` runs
``docker build`` with BuildKit (the Dockerfile uses cache mounts, which the SDK's
session-less build endpoint cannot do).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from attune_console.core.compose import ComposeProject
from attune_console.core.errors import AttuneError, InputError

DOCKERFILE = Path("docker/Dockerfile.pack-binaries")
IMAGE_DIR = "/pack-binaries"


class PackBinariesError(AttuneError):
    """Building or extracting the pack binaries failed."""


@dataclass(frozen=True)
class InstalledBinary:
    name: str
    pack: str
    path: Path
    size: int


def pack_for(binary: str, packs_dir: Path, default: str = "core") -> str:
    """The pack a binary belongs to: ``attune-<pack>-...`` when ``packs/<pack>`` exists, else ``default``."""
    if binary.startswith("attune-"):
        rest = binary.removeprefix("attune-")
        # Longest pack name first, so "core-extra" wins over "core" when both exist.
        for pack in sorted((p.name for p in packs_dir.iterdir() if p.is_dir()), key=len, reverse=True):
            if rest.startswith(pack + "-"):
                return pack
    return default


def _docker_clis() -> list[str]:
    seen: list[str] = []
    dirs = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin"]
    for d in dirs:
        exe = shutil.which("docker", path=d) if d else None
        if exe and os.path.realpath(exe) not in {os.path.realpath(s) for s in seen}:
            seen.append(exe)
    return seen


async def build_image(
    project: ComposeProject,
    tag: str,
    on_line: Callable[[str], None] | None = None,
    no_cache: bool = False,
) -> str:
    """``DOCKER_BUILDKIT=1 docker build -f docker/Dockerfile.pack-binaries`` and return the image id.

    Only for when the build engine is not used; tries each ``docker`` client on PATH
    (a client without BuildKit support is skipped with its message kept for the error).
    """
    dockerfile = project.root / DOCKERFILE
    if not dockerfile.is_file():
        raise InputError(
            "no Dockerfile for pack binaries (expected docker/Dockerfile.pack-binaries)", dockerfile
        )
    args: list[str] = []
    for key in ("RUST_IMAGE", "RUNTIME_IMAGE", "ATTUNE_BUILD_ID"):
        if project.env.get(key):
            args += ["--build-arg", f"{key}={project.env[key]}"]
    errors: list[str] = []
    for cli in _docker_clis():
        with tempfile.TemporaryDirectory() as tmp:
            iid = Path(tmp) / "iid"
            argv = [
                cli,
                "build",
                "--progress=plain",
                "-f",
                str(dockerfile),
                *args,
                "--iidfile",
                str(iid),
                "-t",
                tag,
            ]
            if no_cache:
                argv.append("--no-cache")
            argv.append(str(project.root))
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env={**os.environ, "DOCKER_BUILDKIT": "1"},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            assert proc.stdout is not None
            tail: list[str] = []
            async for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                tail = [*tail[-19:], line]
                if on_line is not None:
                    on_line(line)
            await proc.wait()
            if proc.returncode == 0 and iid.is_file():
                return iid.read_text().strip()
            text = "\n".join(tail)
            if "buildx" in text or "BuildKit is enabled but" in text:
                errors.append(f"{cli}: no BuildKit support")
                continue
            raise PackBinariesError(f"building {DOCKERFILE} failed (exit {proc.returncode}):\n{text}")
    raise PackBinariesError(
        "no docker client with BuildKit found (" + "; ".join(errors or ["none on PATH"]) + ")"
    )


def _write_atomic(dest: Path, src: Any, size: int) -> None:
    """Copy ``size`` bytes of ``src`` to ``dest`` via a temporary file in the same directory, mode 0755."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fchmod(out.fileno(), 0o755)
            os.fsync(out.fileno())
        if os.path.getsize(tmp) != size:
            raise PackBinariesError(
                f"{dest.name}: short read from the image ({os.path.getsize(tmp)} of {size} bytes)"
            )
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def extract_binaries(
    client: Any, image: str, packs_dir: Path, image_dir: str = IMAGE_DIR
) -> list[InstalledBinary]:
    """Copy every file of ``image_dir`` in ``image`` into ``packs/<pack>/sensors/`` (0755, atomically).

    The container is created (never started) and removed in ``finally``, even on error.
    """
    import docker.errors

    if not packs_dir.is_dir():
        raise InputError("no packs directory", packs_dir)
    try:
        container = client.containers.create(image, labels={"io.attune-console.pack-binaries": "extract"})
    except docker.errors.ImageNotFound:
        raise PackBinariesError(
            f"image {image} is not on the daemon: build the pack binaries first"
        ) from None
    installed: list[InstalledBinary] = []
    try:
        try:
            stream, _stat = container.get_archive(image_dir)
        except docker.errors.NotFound:
            raise PackBinariesError(f"{image_dir} is missing from image {image}") from None
        with tempfile.SpooledTemporaryFile(max_size=64 << 20) as buf:
            for chunk in stream:
                buf.write(chunk)
            buf.seek(0)
            with tarfile.open(fileobj=buf, mode="r:") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    name = PurePosixPath(member.name).name
                    if name.startswith("."):
                        continue
                    pack = pack_for(name, packs_dir)
                    dest = packs_dir / pack / "sensors" / name
                    src = tar.extractfile(member)
                    if src is None:
                        continue
                    _write_atomic(dest, src, member.size)
                    installed.append(InstalledBinary(name, pack, dest, member.size))
    finally:
        container.remove(force=True)
    if not installed:
        raise PackBinariesError(f"no binaries in {image_dir} of image {image}")
    return installed
