"""A Dockerfile parser for what decides caching, and its resolution for one service's build args.

Parsing keeps every instruction's file and line: parser directives (``escape``, ``syntax``),
line continuations, comments inside continuations, heredocs (``<<EOF``, ``<<-EOF``, quoted
delimiters), JSON forms and ``--flag=value`` options. :func:`resolve` then applies BuildKit's
ARG scoping for one set of build args and one target: global ARGs feed ``FROM``, a stage sees
an ARG only after declaring it, ``COPY``/``ADD``/``WORKDIR`` arguments are expanded, ``RUN``
text is not (the shell expands it) but its cache key holds the values of the ARGs declared in
its stage. Only stages the target needs are kept, as BuildKit builds only those.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from attune_console.core.errors import InputError

KNOWN = frozenset(
    {
        "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
        "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
    }
)  # fmt: skip
#: Instructions that produce a build step (a vertex BuildKit reports and caches).
STEP_KEYWORDS = frozenset({"FROM", "RUN", "COPY", "ADD", "WORKDIR"})
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"<<(-?)(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    expand: bool  # unquoted delimiter: the content is subject to expansion


@dataclass(frozen=True)
class Instruction:
    """One instruction; ``line``/``end_line`` are 1-based physical lines in ``file``."""

    keyword: str
    rest: str  # everything after the keyword, continuations joined
    flags: tuple[tuple[str, str], ...]
    args: tuple[str, ...]  # words after the flags (JSON form decoded)
    json_form: bool
    heredocs: tuple[Heredoc, ...]
    file: Path
    line: int
    end_line: int
    stage: int  # -1 for ARGs before the first FROM

    @property
    def text(self) -> str:
        """The instruction on one line, as BuildKit names the step."""
        return f"{self.keyword} {' '.join(self.rest.split())}".strip()

    def flag(self, name: str) -> str | None:
        for k, v in self.flags:
            if k == name:
                return v
        return None

    def flag_all(self, name: str) -> list[str]:
        return [v for k, v in self.flags if k == name]


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None  # the AS alias, lower-cased as BuildKit matches it
    base: str  # image or stage reference as written (unexpanded)
    platform: str | None
    line: int
    instructions: tuple[Instruction, ...]  # starting with the FROM

    @property
    def label(self) -> str:
        return self.name or f"stage-{self.index}"


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    directives: dict[str, str]
    global_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]

    def stage_index(self, ref: str) -> int | None:
        """Index of the stage named (or numbered) ``ref``, as ``FROM``/``--from`` resolve it."""
        low = ref.lower()
        for s in self.stages:
            if s.name == low:
                return s.index
        if ref.isdigit() and int(ref) < len(self.stages):
            return int(ref)
        return None

    def find_stage(self, ref: str) -> Stage | None:
        i = self.stage_index(ref)
        return None if i is None else self.stages[i]


# --- lexing -----------------------------------------------------------------------------------


def _split_words(s: str) -> list[str]:
    """Whitespace-split honouring quotes, keeping ``$`` for later expansion (Docker's word rules)."""
    words: list[str] = []
    cur: list[str] = []
    quote: str | None = None
    have = False
    i = 0
    while i < len(s):
        c = s[i]
        if quote:
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"' and i + 1 < len(s) and s[i + 1] in '"\\$':
                cur.append(s[i + 1])
                i += 1
            else:
                cur.append(c)
        elif c in "\"'":
            quote, have = c, True
        elif c.isspace():
            if cur or have:
                words.append("".join(cur))
            cur, have = [], False
        elif c == "\\" and i + 1 < len(s):
            cur.append(s[i + 1])
            i += 1
            have = True
        else:
            cur.append(c)
            have = True
        i += 1
    if cur or have:
        words.append("".join(cur))
    return words


def _parse_flags(words: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    flags: list[tuple[str, str]] = []
    i = 0
    while i < len(words) and words[i].startswith("--") and len(words[i]) > 2:
        body = words[i][2:]
        key, _, value = body.partition("=")
        flags.append((key.lower(), value if "=" in body else "true"))
        i += 1
    return flags, words[i:]


def _flag_prefix_split(rest: str) -> tuple[str, str]:
    """Split ``rest`` into the leading ``--flag`` words and the remainder (kept verbatim for JSON/RUN)."""
    m = re.match(r"^((?:\s*--[A-Za-z][A-Za-z0-9-]*(?:=(?:\"[^\"]*\"|'[^']*'|\S)*)?)*)\s*(.*)$", rest, re.S)
    if m is None:  # pragma: no cover - the pattern always matches
        return "", rest
    return m.group(1), m.group(2)


def parse(path: Path, text: str | None = None) -> Dockerfile:
    """Parse ``path`` (or ``text`` attributed to it). Raises :class:`InputError` with line and column."""
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise InputError("Dockerfile not found", path) from exc
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text: {exc.reason}", path) from exc
    lines = text.splitlines()
    directives: dict[str, str] = {}
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if m is None or m.group(1).lower() in directives:
            break
        directives[m.group(1).lower()] = m.group(2)
        i += 1
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise InputError(f"invalid escape directive {escape!r}: use '\\\\' or '`'", path, 1, 1)

    global_args: list[Instruction] = []
    stages: list[Stage] = []
    current: list[Instruction] = []
    cur_from: tuple[str, str | None, str | None, int] | None = None

    def close_stage() -> None:
        if cur_from is not None:
            base, name, platform, line = cur_from
            stages.append(Stage(len(stages), name, base, platform, line, tuple(current)))

    n = len(lines)
    while i < n:
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts: list[str] = []
        line = raw
        while True:
            body = line.rstrip()
            if body.endswith(escape):
                parts.append(body[: -len(escape)])
                i += 1
                while i < n and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                    i += 1
                if i >= n:
                    break
                line = lines[i]
                continue
            parts.append(line)
            break
        logical = "".join(parts).strip()
        end = i
        i += 1
        m = re.match(r"^(\S+)(?:\s+(.*))?$", logical, re.S)
        assert m is not None
        keyword = m.group(1).upper()
        rest = (m.group(2) or "").strip()
        if keyword not in KNOWN:
            raise InputError(f"unknown instruction: {m.group(1)}", path, start + 1, 1)
        heredocs: list[Heredoc] = []
        if keyword in ("RUN", "COPY", "ADD"):
            for hm in _HEREDOC.finditer(rest):
                strip_tabs, quote, name = hm.group(1) == "-", hm.group(2), hm.group(3)
                body_lines: list[str] = []
                while i < n:
                    candidate = lines[i].lstrip("\t") if strip_tabs else lines[i]
                    i += 1
                    if candidate == name:
                        break
                    body_lines.append(candidate)
                else:
                    raise InputError(f"heredoc <<{name} is never terminated", path, start + 1, hm.start() + 1)
                end = i - 1
                heredocs.append(Heredoc(name, "\n".join(body_lines) + "\n", not quote))
        flag_text, remainder = (
            _flag_prefix_split(rest) if keyword in ("RUN", "COPY", "ADD", "FROM") else ("", rest)
        )
        flags, _ = _parse_flags(_split_words(flag_text))
        json_form = False
        args: list[str]
        if remainder.startswith("[") and keyword in (
            "RUN",
            "COPY",
            "ADD",
            "CMD",
            "ENTRYPOINT",
            "SHELL",
            "VOLUME",
        ):
            try:
                decoded = json.loads(remainder)
                if isinstance(decoded, list) and all(isinstance(x, str) for x in decoded):
                    args, json_form = list(decoded), True
                else:
                    args = _split_words(remainder)
            except json.JSONDecodeError:
                args = _split_words(remainder)
        elif keyword == "RUN" or keyword in ("CMD", "ENTRYPOINT", "HEALTHCHECK", "SHELL"):
            args = [remainder]
        else:
            args = _split_words(remainder)
        instr = Instruction(
            keyword=keyword,
            rest=rest,
            flags=tuple(flags),
            args=tuple(args),
            json_form=json_form,
            heredocs=tuple(heredocs),
            file=path,
            line=start + 1,
            end_line=end + 1,
            stage=len(stages) if cur_from is not None else -1,
        )
        if keyword == "FROM":
            close_stage()
            words = list(args)
            if not words:
                raise InputError("FROM needs an image", path, start + 1, 1)
            alias: str | None = None
            if len(words) >= 3 and words[1].lower() == "as":
                alias = words[2].lower()
            elif len(words) != 1:
                raise InputError("FROM takes 'IMAGE [AS NAME]'", path, start + 1, 1)
            cur_from = (words[0], alias, dict(flags).get("platform"), start + 1)
            instr = dataclasses.replace(instr, stage=len(stages))
            current = [instr]
        elif cur_from is None:
            if keyword != "ARG":
                raise InputError(
                    f"{keyword} before the first FROM (only ARG may come first)", path, start + 1, 1
                )
            global_args.append(instr)
        else:
            current.append(instr)
    close_stage()
    if not stages:
        raise InputError("no FROM instruction: not a Dockerfile", path, 1, 1)
    return Dockerfile(path=path, directives=directives, global_args=tuple(global_args), stages=tuple(stages))


# --- expansion --------------------------------------------------------------------------------

_EXPAND = re.compile(r"\\\$|\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand(word: str, env: Mapping[str, str], keep_unset: bool = False) -> str:
    """Docker's variable substitution: ``$V``, ``${V}``, ``${V:-w}``, ``${V:+w}``, ``${V-w}``, ``${V+w}``.

    ``keep_unset`` leaves references to unset variables as written (for display names, where
    the shell will expand them later).
    """
    if "$" not in word:
        return word

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "\\$":
            return "$" if not keep_unset else m.group(0)
        if m.group(2):
            if keep_unset and m.group(2) not in env:
                return m.group(0)
            return env.get(m.group(2), "")
        body = m.group(1)
        bm = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\+|-|\+|:\?|\?)(.*))?$", body, re.S)
        if bm is None:
            return m.group(0)
        name, op, arg = bm.group(1), bm.group(2), bm.group(3) or ""
        cur = env.get(name)
        if keep_unset and cur is None:
            return m.group(0)
        if op is None:
            return cur or ""
        if op == ":-":
            return cur if cur else expand(arg, env)
        if op == "-":
            return cur if cur is not None else expand(arg, env)
        if op == ":+":
            return expand(arg, env) if cur else ""
        if op == "+":
            return expand(arg, env) if cur is not None else ""
        return cur or ""

    return _EXPAND.sub(sub, word)


@functools.lru_cache(maxsize=65536)
def _refs(word: str) -> tuple[str, ...]:
    return tuple(sorted(references(word)))


def references(word: str) -> set[str]:
    """Names of the variables ``word`` refers to."""
    return {a or b for a, b in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)", word)}


def _arg_decls(instr: Instruction) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for w in instr.args:
        name, eq, default = w.partition("=")
        out.append((name, default if eq else None))
    return out


def _env_pairs(instr: Instruction) -> list[tuple[str, str]]:
    words = list(instr.args)
    if words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    return [(k, v) for k, _, v in (w.partition("=") for w in words)]


# --- resolution -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One build step of a resolved plan (FROM, RUN, COPY, ADD or WORKDIR)."""

    stage: int
    stage_label: str
    instr: Instruction
    expanded: str  # the instruction with ARG/ENV substituted where Docker substitutes
    sources: tuple[str, ...]  # context-relative source patterns (COPY/ADD from the context)
    from_stage: int | None  # COPY --from=<stage> / FROM <stage>
    from_image: str | None  # COPY --from=<image> / FROM <image>
    mount_stages: tuple[int, ...]  # RUN --mount=from=<stage>
    mounts: tuple[dict[str, str], ...]  # RUN --mount options, expanded
    arg_env: tuple[tuple[str, str], ...]  # ARG values in scope (they key RUN steps)
    env: tuple[tuple[str, str], ...]  # ENV in scope (incl. from the base stage)
    workdir: str
    name: str = ""  # the instruction as BuildKit names the vertex (ARG/ENV values substituted)
    number: int = 0  # 1-based position among the steps of its stage
    stage_total: int = 0
    uses_args: bool = False  # the step's own definition depends on an ARG value

    @property
    def keyword(self) -> str:
        return self.instr.keyword

    @property
    def display(self) -> str:
        """``stage: INSTRUCTION`` as the impact table shows it."""
        return f"{self.stage_label}: {self.name or self.instr.text}"

    @property
    def vertex(self) -> str:
        """BuildKit's progress name for the step, e.g. ``[builder 2/5] COPY crates/api/ ./crates/api/``."""
        return f"[{self.stage_label} {self.number}/{self.stage_total}] {self.name or self.instr.text}"


@dataclass(frozen=True)
class BuildPlan:
    """A Dockerfile resolved for one service's build args and target."""

    dockerfile: Dockerfile
    args: dict[str, str]
    target: int
    stages: tuple[int, ...]  # needed stages, in file order
    steps: tuple[Step, ...]  # steps of the needed stages, in file order
    stage_deps: dict[int, tuple[int, ...]] = field(default_factory=dict)
    unknown_target: str | None = None

    def stage_steps(self, stage: int) -> list[Step]:
        return [s for s in self.steps if s.stage == stage]


def parse_mount(spec: str) -> dict[str, str]:
    """``type=cache,target=/x,id=y,sharing=locked`` as a dict (bare keys map to ``"true"``)."""
    out: dict[str, str] = {}
    for part in _split_csv(spec):
        k, eq, v = part.partition("=")
        out[k.strip().lower()] = v.strip() if eq else "true"
    if "dst" in out and "target" not in out:
        out["target"] = out["dst"]
    if "destination" in out and "target" not in out:
        out["target"] = out["destination"]
    if "source" in out and "src" not in out:
        out["src"] = out["source"]
    out.setdefault("type", "bind")
    return out


def _split_csv(spec: str) -> list[str]:
    parts, cur, quote = [], [], ""
    for c in spec:
        if quote:
            if c == quote:
                quote = ""
            else:
                cur.append(c)
        elif c in "\"'":
            quote = c
        elif c == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    if cur:
        parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def _norm_src(src: str) -> str:
    """A context source as a clean relative POSIX path (``""`` for the whole context)."""
    parts: list[str] = []
    for p in src.replace("\\", "/").split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return "/".join(parts)


_CopyRes = tuple[tuple[str, ...], int | None, str | None, str, str]
_RunRes = tuple[tuple[dict[str, str], ...], tuple[int, ...], str, str]


@dataclass
class ResolveCache:
    """Instruction expansions shared between :func:`resolve` calls for one Dockerfile object."""

    copies: dict[tuple[object, ...], _CopyRes] = field(default_factory=dict)
    runs: dict[tuple[object, ...], _RunRes] = field(default_factory=dict)


def _resolve_copy(
    df: Dockerfile,
    stage: int,
    instr: Instruction,
    scope: Mapping[str, str],
    shown: Mapping[str, str],
    workdir: str,
) -> _CopyRes:
    kw = instr.keyword
    words = [expand(w, scope) for w in instr.args]
    flags = [(k, expand(v, scope)) for k, v in instr.flags]
    from_ref = dict(flags).get("from")
    from_stage = df.stage_index(from_ref) if from_ref else None
    if from_stage is not None and from_stage >= stage:
        from_stage = None
    from_image = from_ref if from_ref and from_stage is None else None
    srcs = words[:-1] if len(words) > 1 else []
    if instr.heredocs:
        srcs = [s for s in srcs if not s.startswith("<<")]
    context_srcs: tuple[str, ...] = ()
    if from_ref is None:
        context_srcs = tuple(_norm_src(s) for s in srcs if not (kw == "ADD" and re.match(r"^[a-z]+://", s)))
    dest = words[-1] if words else ""
    if dest and not dest.startswith("/"):
        dest = workdir.rstrip("/") + "/" + dest
    flag_txt = " ".join(f"--{k}={v}" for k, v in flags)
    heredoc_txt = "".join(f"\n{h.name}:{h.content}" for h in instr.heredocs)
    expanded = f"{kw} {flag_txt + ' ' if flag_txt else ''}{' '.join(srcs)} {dest}{heredoc_txt}"
    return context_srcs, from_stage, from_image, expanded, expand(instr.text, shown, keep_unset=True)


def _resolve_run(
    df: Dockerfile, stage: int, instr: Instruction, scope: Mapping[str, str], shown: Mapping[str, str]
) -> _RunRes:
    mounts = tuple(parse_mount(expand(v, scope)) for v in instr.flag_all("mount"))
    mstages: list[int] = []
    for mt in mounts:
        ref = mt.get("from")
        if ref:
            si = df.stage_index(ref)
            if si is not None and si < stage:
                mstages.append(si)
    other_flags = " ".join(f"--{k}={v}" for k, v in instr.flags if k != "mount")
    heredoc_txt = "".join(f"\n{h.name}:{h.content}" for h in instr.heredocs)
    mount_txt = " ".join("--mount=" + ",".join(f"{k}={v}" for k, v in sorted(m.items())) for m in mounts)
    expanded = f"RUN {mount_txt} {other_flags} {' '.join(instr.args)}{heredoc_txt}"
    if not heredoc_txt:
        expanded = " ".join(expanded.split())
    return mounts, tuple(mstages), expanded, expand(instr.text, shown, keep_unset=True)


def resolve(
    df: Dockerfile,
    build_args: Mapping[str, str],
    target: str | None = None,
    cache: ResolveCache | None = None,
) -> BuildPlan:
    """Resolve ``df`` for ``build_args`` and ``target`` the way BuildKit's Dockerfile frontend does.

    ``cache`` may be shared between calls for the same ``df`` (one per service of a Dockerfile):
    the expansion of an instruction is reused when the variables it refers to have the same
    values, which is most instructions (40 services x 300 ``COPY`` lines in a big workspace).
    """
    memo = cache if cache is not None else ResolveCache()
    copy_memo, run_memo = memo.copies, memo.runs
    globals_: dict[str, str] = {}
    for instr in df.global_args:
        for name, default in _arg_decls(instr):
            if name in build_args:
                globals_[name] = build_args[name]
            elif default is not None:
                globals_[name] = expand(default, globals_)
    declared_globals = {n for instr in df.global_args for n, _ in _arg_decls(instr)}

    unknown_target = None
    if target:
        tidx = df.stage_index(target)
        if tidx is None:
            unknown_target = target
            tidx = len(df.stages) - 1
    else:
        tidx = len(df.stages) - 1

    steps_by_stage: dict[int, list[Step]] = {}
    deps: dict[int, tuple[int, ...]] = {}
    final_env: dict[int, dict[str, str]] = {}
    final_workdir: dict[int, str] = {}
    for stage in df.stages:
        args: dict[str, str] = {}
        base_ref = expand(stage.base, globals_)
        base_stage = df.stage_index(base_ref)
        if base_stage is not None and base_stage >= stage.index:
            base_stage = None
        env: dict[str, str] = dict(final_env.get(base_stage, {})) if base_stage is not None else {}
        workdir = final_workdir.get(base_stage, "/") if base_stage is not None else "/"
        stage_deps: list[int] = [base_stage] if base_stage is not None else []
        out: list[Step] = []
        label = stage.label
        args_t: tuple[tuple[str, str], ...] = ()
        env_t: tuple[tuple[str, str], ...] = tuple(env.items())
        scope: dict[str, str] = {**args, **env}
        shown: dict[str, str] = {k: v for k, v in scope.items() if not k.startswith("__")}

        for instr in stage.instructions:
            kw = instr.keyword
            if kw == "FROM":
                base_image = None if base_stage is not None else base_ref
                out.append(
                    Step(stage.index, label, instr, f"FROM {base_ref}", (), base_stage, base_image, (), (),
                         (), env_t, workdir, name=f"FROM {base_ref}")
                )  # fmt: skip
                continue
            if kw in ("ARG", "ENV", "USER", "SHELL"):
                if kw == "ARG":
                    for name, default in _arg_decls(instr):
                        if name in build_args:
                            args[name] = build_args[name]
                        elif default is not None:
                            args[name] = expand(default, {**args, **env})
                        elif name in declared_globals and name in globals_:
                            args[name] = globals_[name]
                    args_t = tuple(sorted(args.items()))
                elif kw == "ENV":
                    for k, v in _env_pairs(instr):
                        sc = {**args, **env}
                        env[expand(k, sc)] = expand(v, sc)
                else:  # USER/SHELL: no step, but they change later RUN keys through env-like state
                    env[f"__{kw.lower()}__"] = expand(" ".join(instr.args), {**args, **env})
                env_t = tuple(env.items())
                scope = {**args, **env}
                shown = {k: v for k, v in scope.items() if not k.startswith("__")}
                continue
            refs = _refs(instr.rest)
            key = (id(instr), workdir, tuple(scope.get(r) for r in refs))
            if kw == "WORKDIR":
                wd = expand(instr.args[0] if instr.args else "/", scope)
                workdir = wd if wd.startswith("/") else (workdir.rstrip("/") + "/" + wd)
                out.append(
                    Step(stage.index, label, instr, f"WORKDIR {workdir}", (), None, None, (), (), args_t,
                         env_t, workdir, name=expand(instr.text, shown, keep_unset=True))
                )  # fmt: skip
                continue
            if kw in ("COPY", "ADD"):
                chit = copy_memo.get(key)
                if chit is None:
                    chit = _resolve_copy(df, stage.index, instr, scope, shown, workdir)
                    copy_memo[key] = chit
                context_srcs, from_stage, from_image, expanded, name = chit
                if from_stage is not None:
                    stage_deps.append(from_stage)
                out.append(
                    Step(stage.index, label, instr, expanded, context_srcs, from_stage, from_image, (), (),
                         args_t, env_t, workdir, name=name, uses_args=bool(set(refs) & args.keys()))
                )  # fmt: skip
                continue
            if kw == "RUN":
                rhit = run_memo.get(key)
                if rhit is None:
                    rhit = _resolve_run(df, stage.index, instr, scope, shown)
                    run_memo[key] = rhit
                mounts, mstages, expanded, name = rhit
                stage_deps.extend(mstages)
                out.append(
                    Step(stage.index, label, instr, expanded, (), None, None, mstages, mounts, args_t,
                         env_t, workdir, name=name, uses_args=bool(args_t) or bool(set(refs) & args.keys()))
                )  # fmt: skip
                continue
        total = len(out)
        for n_, st in enumerate(out, start=1):
            # Step is frozen; the position is only known once the stage is complete
            object.__setattr__(st, "number", n_)
            object.__setattr__(st, "stage_total", total)
        steps_by_stage[stage.index] = out
        deps[stage.index] = tuple(dict.fromkeys(stage_deps))
        final_env[stage.index] = env
        final_workdir[stage.index] = workdir

    needed: set[int] = set()
    todo = [tidx]
    while todo:
        s = todo.pop()
        if s in needed:
            continue
        needed.add(s)
        todo.extend(deps.get(s, ()))
    order = tuple(sorted(needed))
    return BuildPlan(
        dockerfile=df,
        args=dict(build_args),
        target=tidx,
        stages=order,
        steps=tuple(st for s in order for st in steps_by_stage[s]),
        stage_deps={s: deps[s] for s in order},
        unknown_target=unknown_target,
    )
