"""Which compose command line this machine has: ``docker compose`` (v2) or ``docker-compose`` (v1).

The two name things differently (``<project>-<service>`` against ``<project>_<service>``
images), so the model needs to know which one will run the workspace before it can say
which image a service builds. Detection runs the tools once per process and is cached.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class ComposeCLI:
    """A compose command line: ``argv`` is the prefix to run (``("docker", "compose")``)."""

    argv: tuple[str, ...]
    version: int


def _answers(argv: list[str]) -> bool:
    """True when ``argv`` runs and exits 0 within a few seconds."""
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def _docker_candidates() -> list[str]:
    """Every ``docker`` on PATH: a machine may hold a client with the compose plugin and one without."""
    seen: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory:
            continue
        exe = shutil.which("docker", path=directory)
        if exe and os.path.realpath(exe) not in {os.path.realpath(s) for s in seen}:
            seen.append(exe)
    return seen


@functools.lru_cache(maxsize=1)
def detect() -> ComposeCLI | None:
    """The compose CLI to use, preferring v2 (``docker compose``) when present; ``None`` if neither.

    ``ATTUNE_COMPOSE`` (``v1`` / ``v2``) forces a choice, which tests and odd machines need.
    """
    forced = os.environ.get("ATTUNE_COMPOSE", "").lower()
    if forced in {"", "v2", "2"}:
        for docker in _docker_candidates():
            if _answers([docker, "compose", "version"]):
                return ComposeCLI(argv=(docker, "compose"), version=2)
    if forced in {"", "v1", "1"}:
        exe = shutil.which("docker-compose")
        if exe:
            version = _standalone_version(exe)
            if version is not None:
                return ComposeCLI(argv=(exe,), version=version)
    return None


def _standalone_version(exe: str) -> int | None:
    """Major version of a ``docker-compose`` binary: a Python entry script is v1 (no need to run it,
    which costs a second), anything else is asked (a standalone v2 binary answers ``2.x.y``)."""
    try:
        with open(exe, "rb") as f:
            head = f.read(128)
    except OSError:
        return None
    if head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]:
        return 1
    try:
        proc = subprocess.run(
            [exe, "version", "--short"], capture_output=True, text=True, timeout=15, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    out = proc.stdout.strip().lstrip("v")
    return 2 if out.startswith("2") else 1
