"""Pack binaries: build ``docker/Dockerfile.pack-binaries``, take the binaries out, ship them.

The seed does this with ``docker build``, ``docker create``, ``docker cp``, ``docker rm``
and ``chmod +x``; a failure between ``create`` and ``rm`` leaves a container behind and
a half-copied file in ``packs/``. Here the binaries come out through the SDK's archive
API from a container that is created, never started, and removed in ``finally``; each
binary is written next to its destination and renamed over it with mode 0755, so
``packs/<pack>/sensors/`` never holds half a binary. Then the packs volume is refreshed.

The image is built by the build engine (:func:`build_image`, so its progress shows like
any other build); :func:`extract_binaries` takes the built image id.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from attune_console.core.compose import ComposeProject
from attune_console.core.errors import AttuneError, InputError

if TYPE_CHECKING:
    from attune_console.core.engine import BuildEngine
    from attune_console.core.progress import BuildRun

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


async def build_image(
    engine: BuildEngine,
    project: ComposeProject,
    *,
    tag: str | None = None,
    no_cache: bool = False,
    on_run: Callable[[BuildRun], None] | None = None,
) -> BuildRun:
    """Build ``docker/Dockerfile.pack-binaries`` through the build engine, like any other target.

    ``on_run`` gets the :class:`BuildRun` before the build starts, so its progress can be shown.
    Raises :class:`PackBinariesError` with the failed step's log tail when the build fails.
    """
    from attune_console.core.engine import pack_binaries_target
    from attune_console.core.progress import RunState

    run = engine.submit(pack_binaries_target(project, image=tag), no_cache=no_cache)
    if on_run is not None:
        on_run(run)
    await engine.wait(run)
    if run.state is not RunState.DONE or not run.image_id:
        tail = "\n".join(text for _, text in run.last_log_lines(10))
        why = run.error or (f"step {run.error_step.name} failed" if run.error_step else run.state.value)
        raise PackBinariesError(f"building {DOCKERFILE} failed: {why}" + (f"\n{tail}" if tail else ""))
    return run


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
