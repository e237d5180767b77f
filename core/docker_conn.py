"""Connecting to the Docker daemon the way the docker CLI would, with clear messages when it cannot.

Resolution order (the CLI's): ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY`` / ``DOCKER_CERT_PATH``) wins;
otherwise ``DOCKER_CONTEXT``, otherwise ``currentContext`` of ``~/.docker/config.json`` (``DOCKER_CONFIG``
moves that directory), whose endpoint and TLS material live under ``contexts/meta`` and ``contexts/tls``
(read with the docker SDK's :mod:`docker.context`); otherwise the default local socket.

Every failure becomes :class:`~attune_console.core.errors.DockerUnavailable` with one actionable sentence
(start the daemon, fix socket permissions, check the context...). :class:`DockerConnection` keeps one
client, drops it when the daemon goes away and makes a new one on the next use, so the console keeps
working across daemon restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.context import ContextAPI
from docker.context.config import get_current_context_name

from attune_console.core.errors import DockerUnavailable

__all__ = ["DockerConnection", "Endpoint", "explain", "make_client", "resolve_endpoint"]

DEFAULT_TIMEOUT = 60


@dataclass(frozen=True)
class Endpoint:
    """Where the daemon is: ``host`` (None = SDK default socket), TLS config, and why we chose it."""

    host: str | None
    tls: Any = None  # docker.tls.TLSConfig | bool | None
    source: str = "default"  # "DOCKER_HOST", "context NAME" or "default"


def resolve_endpoint(environ: dict[str, str] | None = None) -> Endpoint:
    """Work out the daemon endpoint from the environment and docker config, like the docker CLI."""
    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        return Endpoint(host=env["DOCKER_HOST"], tls=None, source="DOCKER_HOST")
    name = env.get("DOCKER_CONTEXT") or get_current_context_name() or "default"
    if name == "default":
        return Endpoint(host=None, source="default")
    try:
        ctx = ContextAPI.get_context(name)
    except docker.errors.ContextException as exc:
        raise DockerUnavailable(
            f"docker context '{name}' cannot be read ({exc}); run 'docker context ls' and "
            "'docker context use default' (or set DOCKER_HOST)"
        ) from exc
    if ctx is None:
        raise DockerUnavailable(
            f"docker context '{name}' (current context) does not exist; run 'docker context use default' "
            "or create it"
        )
    return Endpoint(host=ctx.Host, tls=ctx.TLSConfig or False, source=f"context {name}")


def explain(exc: BaseException, endpoint: Endpoint | None = None) -> str:
    """One actionable sentence for a failure to talk to the daemon."""
    where = (endpoint.host if endpoint and endpoint.host else "unix:///var/run/docker.sock") or ""
    via = f" (from {endpoint.source})" if endpoint and endpoint.source != "default" else ""
    text = str(exc)
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(isinstance(c, PermissionError) for c in chain) or "Permission denied" in text:
        return (
            f"permission denied on the Docker socket {where}{via}: add your user to the 'docker' group "
            "(sudo usermod -aG docker $USER, then log in again) or run as root"
        )
    if any(isinstance(c, FileNotFoundError) for c in chain) or "No such file or directory" in text:
        return (
            f"Docker daemon is not running: no socket at {where}{via}; start it "
            "(sudo systemctl start docker, or dockerd &) and try again"
        )
    if "Connection refused" in text or "ConnectionRefused" in text:
        return f"Docker daemon at {where}{via} refused the connection: is dockerd running there?"
    if "SSL" in text or "certificate" in text.lower():
        return f"TLS handshake with {where}{via} failed ({text}); check DOCKER_CERT_PATH or the context's TLS"
    if isinstance(exc, requests.exceptions.Timeout) or "timed out" in text:
        return f"Docker daemon at {where}{via} did not answer in time; is it overloaded or unreachable?"
    return f"cannot talk to the Docker daemon at {where}{via}: {text}"


def make_client(environ: dict[str, str] | None = None, timeout: int = DEFAULT_TIMEOUT) -> docker.DockerClient:
    """A docker SDK client for the resolved endpoint, pinged once; raises DockerUnavailable."""
    try:
        endpoint = resolve_endpoint(environ)
    except DockerUnavailable:
        raise
    try:
        if endpoint.source == "DOCKER_HOST" or endpoint.host is None:
            client = docker.from_env(timeout=timeout, environment=environ)
        else:
            client = docker.DockerClient(base_url=endpoint.host, tls=endpoint.tls, timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(explain(exc, endpoint)) from exc
    except (requests.exceptions.RequestException, OSError) as exc:
        raise DockerUnavailable(explain(exc, endpoint)) from exc
    return client


def is_connection_error(exc: BaseException) -> bool:
    """True when ``exc`` means the daemon went away (as opposed to a build or API error)."""
    if isinstance(exc, (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError)):
        return True
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return True
    if isinstance(exc, docker.errors.DockerException) and not isinstance(exc, docker.errors.APIError):
        return "Connection" in str(exc) or "No such file" in str(exc)
    return False


class DockerConnection:
    """A lazily made, self-healing docker client shared by the engine and the TUI.

    ``client()`` returns a working client or raises DockerUnavailable; after :meth:`invalidate` (called
    when a request fails with a connection error) the next ``client()`` makes a fresh one, which is how
    the console reconnects once the daemon is back.
    """

    def __init__(self, environ: dict[str, str] | None = None, timeout: int = DEFAULT_TIMEOUT) -> None:
        self._environ = environ
        self._timeout = timeout
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()  # builds run in worker threads; make one client, not one each
        self.last_error: str | None = None

    def client(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                try:
                    self._client = make_client(self._environ, self._timeout)
                    self.last_error = None
                except DockerUnavailable as exc:
                    self.last_error = str(exc)
                    raise
            return self._client

    def invalidate(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def available(self) -> bool:
        """Ping (reconnecting if needed); never raises."""
        try:
            self.client().ping()
            return True
        except Exception as exc:
            self.last_error = str(exc) if isinstance(exc, DockerUnavailable) else explain(exc)
            self.invalidate()
            return False

    async def wait_until_available(self, interval: float = 2.0, timeout: float | None = None) -> bool:
        """Poll (off the event loop) until the daemon answers; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if await asyncio.to_thread(self.available):
                return True
            if deadline is not None and loop.time() >= deadline:
                return False
            await asyncio.sleep(interval)

    def close(self) -> None:
        self.invalidate()
