"""The compose file as compose itself reads it: interpolation, build specs, volumes, image names.

Built images must be the ones compose runs, so image names, project name and volume names
follow compose's own rules for the CLI flavour in use (v1 ``docker-compose`` or v2
``docker compose``). Interpolation happens on the YAML node tree so an unset required
variable is reported at the line that uses it.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from attune_console.core.errors import InputError, WorkspaceNotFound
from attune_console.core.workspace import find_compose_file


@dataclass(frozen=True)
class BuildSpec:
    """How compose builds a service's image."""

    context: Path
    dockerfile: Path
    args: dict[str, str]
    target: str | None


@dataclass(frozen=True)
class VolumeMount:
    """One entry of a service's ``volumes:``; ``source`` is the logical name for named volumes."""

    type: str
    source: str | None
    target: str
    read_only: bool


@dataclass(frozen=True)
class ComposeService:
    """One service, interpolated; ``image`` is the name compose tags and runs."""

    name: str
    image: str
    build: BuildSpec | None
    volumes: tuple[VolumeMount, ...]
    depends_on: dict[str, str]
    profiles: tuple[str, ...]
    command: list[str] | None
    line: int | None
    environment: dict[str, str] = field(default_factory=dict)
    explicit_image: bool = False


@dataclass(frozen=True)
class ComposeProject:
    """The whole compose file, with names resolved the way the compose CLI ``flavour`` resolves them."""

    name: str
    file: Path
    root: Path
    services: dict[str, ComposeService]
    volumes: dict[str, str]
    env: dict[str, str]
    flavour: int
    volume_lines: dict[str, int] = field(default_factory=dict)


# --- .env and interpolation -------------------------------------------------------------------

_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$")


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a compose ``.env`` file: ``KEY=VALUE`` lines, ``#`` comments, optional quotes."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc.reason}", path) from exc
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _ENV_LINE.match(raw)
        if m is None:
            raise InputError("expected KEY=VALUE (or a # comment)", path, lineno, 1)
        key, value = m.group(1), m.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
_OPS = (":-", ":?", ":+", "-", "?", "+")


def _braced_end(value: str, start: int) -> int:
    """Index of the ``}`` closing the ``${`` whose body starts at ``start`` (nested ``${..}`` allowed)."""
    depth, i = 1, start
    while i < len(value):
        if value.startswith("${", i):
            depth += 1
            i += 2
            continue
        if value[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"invalid interpolation format in {value!r}: '${{' without a closing '}}'")


def _expand_braced(body: str, env: Mapping[str, str]) -> str:
    m = _NAME.match(body)
    if m is None:
        raise ValueError(f"invalid interpolation format: '${{{body}}}'")
    name, rest = m.group(0), body[m.end() :]
    current = env.get(name)
    if not rest:
        return current or ""
    op = next((o for o in _OPS if rest.startswith(o)), None)
    if op is None:
        raise ValueError(f"invalid interpolation format: '${{{body}}}'")
    arg = rest[len(op) :]
    if op == ":-":
        return current if current else interpolate(arg, env)
    if op == "-":
        return current if current is not None else interpolate(arg, env)
    if op in (":?", "?"):
        if (not current) if op == ":?" else (current is None):
            raise ValueError(f"required variable {name} is missing a value" + (f": {arg}" if arg else ""))
        return current or ""
    if op == ":+":
        return interpolate(arg, env) if current else ""
    return interpolate(arg, env) if current is not None else ""  # "+"


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Substitute ``$VAR``, ``${VAR}``, ``${VAR:-d}``, ``${VAR-d}``, ``${VAR:?e}``, ``${VAR?e}``, ``$$``.

    Defaults may nest (``${A:-${B}}``). Raises ``ValueError`` with a user-facing message; the
    caller adds file and line.
    """
    out: list[str] = []
    i = 0
    while True:
        j = value.find("$", i)
        if j < 0:
            out.append(value[i:])
            return "".join(out)
        out.append(value[i:j])
        nxt = value[j + 1 : j + 2]
        if nxt == "$":
            out.append("$")
            i = j + 2
        elif nxt == "{":
            end = _braced_end(value, j + 2)
            out.append(_expand_braced(value[j + 2 : end], env))
            i = end + 1
        else:
            m = _NAME.match(value, j + 1)
            if m is None:
                raise ValueError(
                    f"invalid interpolation format in {value!r}: a lone '$' (write '$$' for a dollar)"
                )
            out.append(env.get(m.group(0), ""))
            i = m.end()


def _interpolate_nodes(node: yaml.Node, env: Mapping[str, str], file: Path) -> None:
    """Interpolate every string scalar value (not mapping keys) in place, reporting the node's line."""
    stack: list[yaml.Node] = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.ScalarNode):
            if n.tag == "tag:yaml.org,2002:str" and "$" in n.value:
                try:
                    n.value = interpolate(n.value, env)
                except ValueError as exc:
                    raise InputError(str(exc), file, n.start_mark.line + 1, n.start_mark.column + 1) from exc
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
        elif isinstance(n, yaml.MappingNode):
            stack.extend(v for _k, v in n.value)


# --- names ------------------------------------------------------------------------------------


def normalise_project_name(name: str, flavour: int) -> str:
    """Compose's project-name normalisation: lowercase, only ``[a-z0-9_-]`` (v2: starting alnum)."""
    cleaned = re.sub(r"[^-_a-z0-9]", "", name.lower())
    if flavour >= 2:
        cleaned = cleaned.lstrip("-_")
    return cleaned


def _project_name(root: Path, top: Mapping[str, Any], env: Mapping[str, str], flavour: int) -> str:
    explicit = env.get("COMPOSE_PROJECT_NAME")
    if explicit:
        return normalise_project_name(explicit, flavour)
    if flavour >= 2 and isinstance(top.get("name"), str) and top["name"]:
        return normalise_project_name(top["name"], flavour)
    return normalise_project_name(root.name, flavour)


def default_image_name(project: str, service: str, flavour: int) -> str:
    """The image compose tags for a built service without ``image:``."""
    return f"{project}_{service}" if flavour == 1 else f"{project}-{service}"


# --- loading ----------------------------------------------------------------------------------


def _compose_node(file: Path) -> tuple[yaml.Node | None, yaml.SafeLoader]:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc.reason}", file) from exc
    loader = yaml.SafeLoader(text)
    try:
        return loader.get_single_node(), loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = " ".join(p for p in (exc.context, exc.problem) if p) or "malformed YAML"
        raise InputError(
            f"malformed YAML: {msg}", file, mark.line + 1 if mark else None, mark.column + 1 if mark else None
        ) from exc
    except yaml.YAMLError as exc:
        raise InputError(f"malformed YAML: {exc}", file) from exc


def _mapping_lines(node: yaml.Node | None, key: str) -> tuple[yaml.Node | None, dict[str, int]]:
    """The value node under ``key`` of a mapping node, and the 1-based line of each of its keys."""
    if not isinstance(node, yaml.MappingNode):
        return None, {}
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            lines: dict[str, int] = {}
            if isinstance(v, yaml.MappingNode):
                for kk, _vv in v.value:
                    if isinstance(kk, yaml.ScalarNode):
                        lines[str(kk.value)] = kk.start_mark.line + 1
            return v, lines
    return None, {}


def _top_key_lines(node: yaml.Node | None) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): k.start_mark.line + 1 for k, _v in node.value if isinstance(k, yaml.ScalarNode)}


class _Where:
    """Error reporting bound to one compose file and service line."""

    def __init__(self, file: Path, line: int | None) -> None:
        self.file, self.line = file, line

    def error(self, message: str) -> InputError:
        return InputError(message, self.file, self.line)


def _str_dict(value: Any, where: _Where, what: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A compose ``KEY: value`` mapping or ``["KEY=value", "KEY"]`` list as ``dict[str, str]``.

    A bare ``KEY`` takes its value from ``env`` and is dropped when unset, as compose does.
    """
    out: dict[str, str] = {}
    if value is None:
        return out
    if isinstance(value, Mapping):
        for k, v in value.items():
            if v is None:
                if env is not None and str(k) in env:
                    out[str(k)] = env[str(k)]
                continue
            out[str(k)] = _scalar_str(v)
        return out
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                raise where.error(f"{what}: expected 'KEY=VALUE' strings, got {item!r}")
            if "=" in item:
                k, v = item.split("=", 1)
                out[k] = v
            elif env is not None and item in env:
                out[item] = env[item]
        return out
    raise where.error(f"{what}: expected a mapping or a list, got {type(value).__name__}")


def _scalar_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _resolve_host_path(raw: str, root: Path) -> Path:
    if raw.startswith("~"):
        return Path(raw).expanduser()
    p = Path(raw)
    return p if p.is_absolute() else (root / p)


def _parse_build(value: Any, root: Path, env: Mapping[str, str], where: _Where) -> BuildSpec | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = {"context": value}
    if not isinstance(value, Mapping):
        raise where.error(f"build: expected a path or a mapping, got {type(value).__name__}")
    context_raw = value.get("context", ".")
    if not isinstance(context_raw, str):
        raise where.error("build.context: expected a path")
    if re.match(r"^(?:https?|git|ssh)://|^git@|\.git(?:#.*)?$", context_raw):
        return None  # a remote context: nothing on disk to model
    context = Path(os.path.normpath(_resolve_host_path(context_raw, root)))
    dockerfile_raw = value.get("dockerfile", "Dockerfile")
    if not isinstance(dockerfile_raw, str):
        raise where.error("build.dockerfile: expected a path")
    dockerfile = Path(os.path.normpath(context / dockerfile_raw))
    args = _str_dict(value.get("args"), where, "build.args", env)
    target = value.get("target")
    if target is not None and not isinstance(target, str):
        raise where.error("build.target: expected a stage name")
    return BuildSpec(context=context, dockerfile=dockerfile, args=args, target=target or None)


def _parse_volume(item: Any, root: Path, where: _Where) -> VolumeMount:
    if isinstance(item, str):
        parts = item.split(":")
        if len(parts) == 1:
            return VolumeMount("volume", None, parts[0], False)
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) > 2 else ""
        read_only = "ro" in mode.split(",")
        if source.startswith((".", "/", "~")):
            host = os.path.normpath(_resolve_host_path(source, root))
            return VolumeMount("bind", host, target, read_only)
        return VolumeMount("volume", source or None, target, read_only)
    if isinstance(item, Mapping):
        vtype = str(item.get("type", "volume"))
        long_target = item.get("target")
        if not isinstance(long_target, str):
            raise where.error(f"volumes: long syntax entry without a target: {dict(item)!r}")
        raw_source = item.get("source")
        long_source = str(raw_source) if raw_source is not None else None
        if vtype == "bind" and long_source is not None:
            long_source = os.path.normpath(_resolve_host_path(long_source, root))
        return VolumeMount(vtype, long_source, long_target, bool(item.get("read_only")))
    raise where.error(f"volumes: expected 'SOURCE:TARGET[:MODE]' or a mapping, got {item!r}")


def _parse_depends_on(value: Any, where: _Where) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, list):
        return {str(s): "service_started" for s in value}
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for name, spec in value.items():
            cond = "service_started"
            if isinstance(spec, Mapping) and spec.get("condition"):
                cond = str(spec["condition"])
            out[str(name)] = cond
        return out
    raise where.error("depends_on: expected a list or a mapping")


def _parse_command(value: Any, where: _Where) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise where.error(f"command: {exc}") from exc
    if isinstance(value, list):
        return [_scalar_str(v) for v in value]
    raise where.error("command: expected a string or a list")


def _iter_mapping(value: Any, file: Path, line: int | None, what: str) -> Iterator[tuple[str, Any]]:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise InputError(f"{what}: expected a mapping, got {type(value).__name__}", file, line)
    for k, v in value.items():
        yield str(k), v


def load_compose(
    root: Path, environ: Mapping[str, str] | None = None, flavour: int | None = None
) -> ComposeProject:
    """Load the compose file of ``root`` as compose ``flavour`` (1 or 2; ``None`` detects) would.

    The interpolation environment is ``.env`` overridden by ``environ`` (default ``os.environ``).
    Raises :class:`InputError` with file, line and column for malformed YAML or interpolation.
    """
    root = Path(root).resolve()
    file = find_compose_file(root)
    if file is None:
        raise WorkspaceNotFound(f"{root}: no compose file")
    if flavour is None:
        from attune_console.core.compose_cli import detect

        cli = detect()
        flavour = cli.version if cli is not None else 2
    env = read_dotenv(root / ".env")
    env.update(os.environ if environ is None else environ)

    node, loader = _compose_node(file)
    try:
        if node is not None:
            _interpolate_nodes(node, env, file)
            try:
                data = loader.construct_document(node)
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark
                raise InputError(
                    f"malformed YAML: {exc.problem}", file, mark.line + 1 if mark else None
                ) from exc
        else:
            data = {}
    finally:
        loader.dispose()
    if not isinstance(data, Mapping):
        raise InputError("the compose file must be a mapping with 'services:'", file, 1, 1)

    _services_node, service_lines = _mapping_lines(node, "services")
    _volumes_node, volume_lines = _mapping_lines(node, "volumes")
    project = _project_name(root, data, env, flavour)

    volumes: dict[str, str] = {}
    for vname, spec in _iter_mapping(
        data.get("volumes"), file, _top_key_lines(node).get("volumes"), "volumes"
    ):
        real = f"{project}_{vname}"
        if isinstance(spec, Mapping):
            ext = spec.get("external")
            if isinstance(spec.get("name"), str):
                real = spec["name"]
            elif isinstance(ext, Mapping) and isinstance(ext.get("name"), str):
                real = ext["name"]
            elif ext:
                real = vname
        volumes[vname] = real

    services: dict[str, ComposeService] = {}
    top_lines = _top_key_lines(node)
    for sname, spec in _iter_mapping(data.get("services"), file, top_lines.get("services"), "services"):
        line = service_lines.get(sname)
        where = _Where(file, line)
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            raise where.error(f"service {sname!r}: expected a mapping")
        build = _parse_build(spec.get("build"), root, env, where)
        explicit = spec.get("image")
        image = str(explicit) if explicit else default_image_name(project, sname, flavour)
        raw_volumes = spec.get("volumes") or []
        if not isinstance(raw_volumes, list):
            raise where.error(f"service {sname!r}: volumes: expected a list")
        profiles = spec.get("profiles") or []
        if not isinstance(profiles, list):
            raise where.error(f"service {sname!r}: profiles: expected a list")
        services[sname] = ComposeService(
            name=sname,
            image=image,
            build=build,
            volumes=tuple(_parse_volume(v, root, where) for v in raw_volumes),
            depends_on=_parse_depends_on(spec.get("depends_on"), where),
            profiles=tuple(str(p) for p in profiles),
            command=_parse_command(spec.get("command"), where),
            line=line,
            environment=_str_dict(spec.get("environment"), where, "environment", env),
            explicit_image=bool(explicit),
        )
    return ComposeProject(
        name=project,
        file=file,
        root=root,
        services=services,
        volumes=volumes,
        env=dict(env),
        flavour=flavour,
        volume_lines=volume_lines,
    )
