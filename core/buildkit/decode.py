"""Decode BuildKit status messages and apply them to a :class:`~attune_console.core.progress.BuildRun`.

Two sources carry the same ``SolveStatus`` data:

* the Engine API ``/build`` with ``version=2`` streams JSON lines; ``{"id": "moby.buildkit.trace",
  "aux": "<base64>"}`` holds a serialized ``moby.buildkit.v1.StatusResponse`` (decoded here with the
  real protobuf runtime and the generated ``buildkit_status_pb2``);
* ``docker buildx build --progress=rawjson`` prints the same structure as JSON (see ``core/buildx.py``,
  which maps it onto :func:`apply_status_fields`).

Both end in the same ``BuildRun.apply_*`` calls, so the model cannot tell them apart.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from attune_console.core.buildkit import buildkit_status_pb2 as pb
from attune_console.core.progress import BuildRun, StepWarning

TRACE_ID = "moby.buildkit.trace"
IMAGE_ID = "moby.image.id"

StatusResponse = pb.StatusResponse


class TraceDecodeError(ValueError):
    """An aux message that is not a valid base64 StatusResponse."""


def decode_trace(aux: str | bytes) -> Any:
    """Decode the ``aux`` of a ``moby.buildkit.trace`` JSON message into a ``StatusResponse``."""
    try:
        raw = base64.b64decode(aux, validate=True)
    except (ValueError, TypeError) as exc:
        raise TraceDecodeError(f"trace aux is not base64: {exc}") from exc
    msg = pb.StatusResponse()
    try:
        msg.ParseFromString(raw)
    except DecodeError as exc:
        raise TraceDecodeError(f"trace aux is not a StatusResponse: {exc}") from exc
    return msg


def _ts(msg: Any, field: str) -> float | None:
    if not msg.HasField(field):
        return None
    t = getattr(msg, field)
    return float(t.seconds) + float(t.nanos) * 1e-9


def apply_status(run: BuildRun, msg: Any) -> None:
    """Apply one decoded ``StatusResponse`` to ``run`` and deliver its events as one batch."""
    for v in msg.vertexes:
        run.apply_vertex(
            v.digest,
            v.name,
            started=_ts(v, "started"),
            completed=_ts(v, "completed"),
            cached=v.cached,
            error=v.error,
            inputs=v.inputs,
        )
    for s in msg.statuses:
        run.apply_status(
            s.vertex,
            s.ID,
            name=s.name,
            current=s.current,
            total=s.total,
            started=_ts(s, "started"),
            completed=_ts(s, "completed"),
        )
    for lg in msg.logs:
        run.apply_log(lg.vertex, int(lg.stream), lg.msg)
    for w in msg.warnings:
        line = w.ranges[0].start.line if len(w.ranges) else None
        run.apply_warning(
            w.vertex,
            StepWarning(
                short=w.short.decode("utf-8", "replace"),
                detail=tuple(d.decode("utf-8", "replace") for d in w.detail),
                url=w.url,
                level=int(w.level),
                line=line or None,
            ),
        )
    run.flush()


@dataclass
class StreamItem:
    """One JSON line of the ``/build`` response, classified.

    ``kind`` is ``trace`` (``status`` holds a decoded StatusResponse), ``image_id``, ``error``
    (``text`` is the daemon's message), ``stream`` (plain text output) or ``other``.
    """

    kind: str
    status: Any = None
    text: str = ""


def classify(obj: dict[str, Any]) -> StreamItem:
    """Turn one decoded JSON line of the Engine API build stream into a :class:`StreamItem`."""
    ident = obj.get("id")
    if ident == TRACE_ID and "aux" in obj:
        return StreamItem("trace", status=decode_trace(obj["aux"]))
    if ident == IMAGE_ID and isinstance(obj.get("aux"), dict):
        return StreamItem("image_id", text=str(obj["aux"].get("ID", "")))
    if "errorDetail" in obj or "error" in obj:
        detail = obj.get("errorDetail") or {}
        text = detail.get("message") or obj.get("error") or "build failed"
        return StreamItem("error", text=str(text))
    if "stream" in obj:
        return StreamItem("stream", text=str(obj["stream"]))
    return StreamItem("other", text=str(obj))
