"""Building through ``docker buildx build --progress=rawjson`` when a non-default builder is configured.

Teams scale builds past one machine with buildx builders (``docker-container``, ``remote``,
``kubernetes`` drivers). Those builders are not reachable through the Engine API ``/build``, so when one
is selected (``BUILDX_BUILDER``, or ``docker buildx use NAME`` recorded in ``~/.docker/buildx/current``)
and its driver is not ``docker``, the engine runs the buildx CLI instead and reads its ``rawjson``
progress: one JSON ``SolveStatus`` per line on stderr, the same vertexes/statuses/logs/warnings the
Engine API sends as protobuf, so the same :class:`~attune_console.core.progress.BuildRun` is fed.

The JSON shape follows buildkit's ``client/graph.go`` struct tags: ``digest``, ``inputs``, ``name``,
``started``/``completed`` (RFC 3339, nanoseconds), ``cached``, ``error``; statuses ``id``, ``vertex``,
``current``, ``total``; logs ``vertex``, ``stream``, ``data`` (base64); warnings ``short``/``detail``
(base64) and ``range``. Registry cache import/export (``cache_from`` / ``cache_to`` of the target) pass
through as ``--cache-from`` / ``--cache-to``. The image is ``--load``\\ ed into the local daemon so
compose runs it as usual; its id comes from ``--iidfile``.

Cancel sends SIGINT (buildx then cancels the solve on the builder, as on Ctrl-C) and kills the
process if it has not exited within a few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attune_console.core.progress import BuildRun, StepWarning

if TYPE_CHECKING:
    from attune_console.core.engine import BuildEngine, _Job

__all__ = ["BuildxBuilder", "apply_rawjson", "build_argv", "detect_builder", "parse_time"]

_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_time(value: Any) -> float | None:
    """Epoch seconds from a Go RFC 3339 time (``2024-05-01T10:00:00.123456789Z``); None if absent/zero."""
    if not isinstance(value, str) or not value:
        return None
    m = _TIME_RE.match(value)
    if not m:
        return None
    base, frac, zone = m.groups()
    if base.startswith("0001-01-01"):
        return None  # Go's zero time
    tz = timezone.utc if zone == "Z" else datetime.strptime(zone.replace(":", ""), "%z").tzinfo
    dt = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=tz)
    seconds = dt.timestamp()
    if frac:
        seconds += int(frac) / (10 ** len(frac))
    return seconds


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        return b""
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError):
        return value.encode()


def apply_rawjson(run: BuildRun, status: dict[str, Any]) -> None:
    """Apply one rawjson ``SolveStatus`` object to ``run`` and deliver its events as one batch."""
    for v in status.get("vertexes") or ():
        run.apply_vertex(
            str(v.get("digest", "")),
            str(v.get("name", "")),
            started=parse_time(v.get("started")),
            completed=parse_time(v.get("completed")),
            cached=bool(v.get("cached", False)),
            error=str(v.get("error") or ""),
            inputs=[str(i) for i in v.get("inputs") or ()],
        )
    for s in status.get("statuses") or ():
        run.apply_status(
            str(s.get("vertex", "")),
            str(s.get("id", "")),
            name=str(s.get("name", "")),
            current=int(s.get("current") or 0),
            total=int(s.get("total") or 0),
            started=parse_time(s.get("started")),
            completed=parse_time(s.get("completed")),
        )
    for lg in status.get("logs") or ():
        run.apply_log(str(lg.get("vertex", "")), int(lg.get("stream") or 1), _b64(lg.get("data")))
    for w in status.get("warnings") or ():
        ranges = w.get("range") or []
        line = None
        if ranges and isinstance(ranges[0], dict):
            line = (ranges[0].get("start") or {}).get("line")
        run.apply_warning(
            str(w.get("vertex", "")),
            StepWarning(
                short=_b64(w.get("short")).decode("utf-8", "replace"),
                detail=tuple(_b64(d).decode("utf-8", "replace") for d in w.get("detail") or ()),
                url=str(w.get("url") or ""),
                level=int(w.get("level") or 1),
                line=int(line) if line else None,
            ),
        )
    run.flush()


def parse_line(line: bytes | str) -> dict[str, Any] | None:
    """A rawjson status object, or None for the plain text buildx also prints (``ERROR: ...``)."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if isinstance(obj, dict) and any(k in obj for k in ("vertexes", "statuses", "logs", "warnings")):
        return obj
    return None


# --------------------------------------------------------------------------- builder selection


def _docker_config_dir(environ: dict[str, str]) -> Path:
    return Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


@dataclass(frozen=True)
class BuildxBuilder:
    """A selected non-default buildx builder and how to run the CLI (``docker`` is argv[0])."""

    name: str
    driver: str
    docker: str = "docker"

    async def build(self, job: _Job, loop: asyncio.AbstractEventLoop, engine: BuildEngine) -> None:
        """Run ``docker buildx build`` for ``job``, feeding its run; sets job.image_id / job.error."""
        run = job.run
        with tempfile.TemporaryDirectory(prefix="attune-buildx-") as tmp:
            iidfile = Path(tmp) / "iid"
            argv = build_argv(self, job.target, iidfile=iidfile, no_cache=job.no_cache)
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            job.response = proc
            text_tail: list[str] = []
            assert proc.stderr is not None
            async for raw in proc.stderr:
                obj = parse_line(raw)
                if obj is not None:
                    apply_rawjson(run, obj)
                else:
                    txt = raw.decode("utf-8", "replace").rstrip()
                    if txt:
                        text_tail.append(txt)
                        del text_tail[:-20]
            code = await proc.wait()
            if job.cancelled:
                return
            if code == 0 and iidfile.is_file():
                job.image_id = iidfile.read_text().strip()
            else:
                errors = [t for t in text_tail if t.startswith("ERROR")] or text_tail[-3:]
                job.error = "; ".join(errors) or f"docker buildx build exited with {code}"

    def cancel(self, job: _Job) -> None:
        proc = job.response
        if proc is None or getattr(proc, "returncode", 0) is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)

        async def _kill_later() -> None:
            await asyncio.sleep(5)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(_kill_later())


def build_argv(builder: BuildxBuilder, target: Any, *, iidfile: Path, no_cache: bool = False) -> list[str]:
    """The ``docker buildx build`` command line for a :class:`~attune_console.core.engine.BuildTarget`."""
    argv = [builder.docker, "buildx", "build", "--builder", builder.name, "--progress=rawjson"]
    argv += ["-f", str(target.dockerfile), "-t", target.image, "--iidfile", str(iidfile), "--load"]
    for key, value in dict(target.args).items():
        argv += ["--build-arg", f"{key}={value}"]
    if target.target:
        argv += ["--target", target.target]
    if no_cache:
        argv.append("--no-cache")
    for c in target.cache_from:
        argv += ["--cache-from", c]
    for c in target.cache_to:
        argv += ["--cache-to", c]
    argv.append(str(target.context))
    return argv


def detect_builder(environ: dict[str, str] | None = None, docker: str = "docker") -> BuildxBuilder | None:
    """The selected buildx builder when it is a non-default one (driver other than ``docker``), else None.

    Reads ``BUILDX_BUILDER`` or ``<DOCKER_CONFIG>/buildx/current`` and the builder's instance file; then
    checks that ``docker buildx`` exists. Any doubt means None: the Engine API path always works.
    """
    env = dict(os.environ if environ is None else environ)
    cfg = _docker_config_dir(env) / "buildx"
    name = env.get("BUILDX_BUILDER")
    if not name:
        try:
            current = json.loads((cfg / "current").read_text())
            name = current.get("Name") or None
        except (OSError, ValueError, AttributeError):
            return None
    if not name or name == "default":
        return None
    try:
        instance = json.loads((cfg / "instances" / name).read_text())
    except (OSError, ValueError):
        return None  # a docker context used as builder: its driver is "docker"
    driver = str(instance.get("Driver") or "")
    if not driver or driver == "docker":
        return None
    exe = shutil.which(docker)
    if exe is None:
        return None
    try:
        ok = subprocess.run([exe, "buildx", "version"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return BuildxBuilder(name=name, driver=driver, docker=exe) if ok else None
