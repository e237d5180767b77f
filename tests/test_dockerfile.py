"""Dockerfile parsing (continuations, comments, heredocs, directives, flags) and ARG resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from attune_console.core.dockerfile import expand, parse, parse_mount, resolve
from attune_console.core.errors import InputError

P = Path("/ws/Dockerfile")


def test_continuations_comments_and_lines() -> None:
    df = parse(
        P,
        "# escape=\\\n"
        "FROM alpine AS base\n"
        "# a comment\n"
        "RUN echo a \\\n"
        "  # comment inside a continuation\n"
        "\n"
        "  && echo b\n"
        "COPY a b /dst/\n",
    )
    assert df.directives == {"escape": "\\"}
    base = df.stages[0]
    assert base.name == "base"
    run = base.instructions[1]
    assert (run.keyword, run.line, run.end_line) == ("RUN", 4, 7)
    assert run.args == ("echo a   && echo b",)
    assert base.instructions[2].line == 8


def test_backtick_escape_directive() -> None:
    df = parse(P, "# escape=`\nFROM x\nRUN echo a `\n  b\n")
    assert df.stages[0].instructions[1].args == ("echo a   b",)


def test_directive_only_at_top() -> None:
    df = parse(P, "FROM x\n# escape=`\nRUN a\n")
    assert df.directives == {}


def test_heredocs() -> None:
    df = parse(
        P,
        "FROM x\nRUN <<EOF\nset -e\necho hi\nEOF\n"
        "COPY <<-'CONF' /etc/app.conf\n\tkey=$V\n\tCONF\nRUN after\n",
    )
    run, copy, after = df.stages[0].instructions[1:]
    assert run.heredocs[0].content == "set -e\necho hi\n"
    assert (run.line, run.end_line) == (2, 5)
    assert copy.heredocs[0].content == "key=$V\n"
    assert copy.heredocs[0].expand is False
    assert after.line == 9


def test_unterminated_heredoc_is_an_error() -> None:
    with pytest.raises(InputError) as info:
        parse(P, "FROM x\nRUN <<EOF\necho\n")
    assert info.value.line == 2


def test_flags_json_and_from() -> None:
    df = parse(
        P,
        "FROM --platform=linux/amd64 rust:1 AS Build\n"
        'COPY --from=build --chown=1:1 ["a b", "/dst"]\n'
        "RUN --mount=type=cache,target=/t,id=x-${S},sharing=locked --network=none cargo build\n",
    )
    st = df.stages[0]
    assert st.name == "build" and st.platform == "linux/amd64"
    copy = st.instructions[1]
    assert copy.flag("from") == "build" and copy.flag("chown") == "1:1"
    assert copy.json_form and copy.args == ("a b", "/dst")
    run = st.instructions[2]
    assert run.flag_all("mount") == ["type=cache,target=/t,id=x-${S},sharing=locked"]
    assert run.flag("network") == "none"
    assert run.args == ("cargo build",)
    assert parse_mount(run.flag_all("mount")[0]) == {
        "type": "cache",
        "target": "/t",
        "id": "x-${S}",
        "sharing": "locked",
    }


@pytest.mark.parametrize(
    ("text", "line"),
    [("RUN x\n", 1), ("FROM a\nBOGUS b\n", 2), ("# only a comment\n", 1), ("FROM a b c d\n", 1)],
)
def test_errors_name_the_line(text: str, line: int) -> None:
    with pytest.raises(InputError) as info:
        parse(P, text)
    assert info.value.line == line
    assert info.value.file == P


def test_missing_file() -> None:
    with pytest.raises(InputError, match="not found"):
        parse(Path("/nonexistent/Dockerfile"))


def test_expand_forms() -> None:
    env = {"A": "a", "E": ""}
    assert expand("${A}/$A/${A:-x}/${E:-d}/${U:-u}/${A:+p}/${U:+p}/\\$A", env) == "a/a/a/d/u/p//$A"
    assert expand("$U/${U}", {}, keep_unset=True) == "$U/${U}"


DF = """\
ARG BASE=rust:1
ARG UNUSED=1
FROM ${BASE} AS planner
ARG SERVICE
ARG WITH_DEFAULT=d-${SERVICE}
WORKDIR /build
COPY Cargo.toml ./
RUN cargo build --bin ${SERVICE}
FROM planner AS builder
ARG SERVICE
COPY crates/${SERVICE}/ ./crates/${SERVICE}/
FROM debian AS runtime
COPY --from=builder /out /bin/
FROM alpine AS unrelated
RUN true
"""


def test_resolve_arg_scoping() -> None:
    df = parse(P, DF)
    plan = resolve(df, {"SERVICE": "api"}, "runtime")
    assert plan.stages == (0, 1, 2)  # 'unrelated' is not needed for runtime
    steps = {(s.stage_label, s.keyword, s.instr.line): s for s in plan.steps}
    frm = steps[("planner", "FROM", 3)]
    assert frm.from_image == "rust:1"
    run = steps[("planner", "RUN", 8)]
    assert dict(run.arg_env) == {"SERVICE": "api", "WITH_DEFAULT": "d-api"}
    assert run.uses_args
    copy = steps[("planner", "COPY", 7)]
    assert not copy.uses_args and copy.sources == ("Cargo.toml",)
    svc_copy = steps[("builder", "COPY", 11)]
    assert svc_copy.sources == ("crates/api",)
    assert svc_copy.name == "COPY crates/api/ ./crates/api/"
    assert svc_copy.uses_args
    assert steps[("runtime", "COPY", 13)].from_stage == 1
    assert plan.stage_deps[1] == (0,)
    assert svc_copy.vertex == "[builder 2/2] COPY crates/api/ ./crates/api/"


def test_resolve_build_arg_overrides_global_default_and_unknown_target() -> None:
    df = parse(P, DF)
    plan = resolve(df, {"BASE": "rust-local:2", "SERVICE": "w"}, "nope")
    assert plan.unknown_target == "nope"
    assert plan.target == 3
    plan = resolve(df, {"BASE": "rust-local:2", "SERVICE": "w"})
    assert plan.stages == (3,)
    df2 = parse(P, "ARG BASE=x\nFROM ${BASE}\nARG BASE\nRUN echo $BASE\n")
    step = resolve(df2, {}).steps[-1]
    assert dict(step.arg_env) == {"BASE": "x"}  # a redeclared global ARG takes the global value


def test_arg_not_declared_in_stage_is_not_in_scope() -> None:
    df = parse(P, "ARG S=api\nFROM x\nCOPY crates/${S}/ /c/\nRUN build\n")
    plan = resolve(df, {"S": "api"})
    assert plan.steps[1].sources == ("crates",)  # ${S} is empty without `ARG S` in the stage
    assert plan.steps[2].arg_env == ()
