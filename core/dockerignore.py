"""``.dockerignore`` with Docker's own matching rules, reused from the docker SDK.

``docker.utils.build.PatternMatcher`` is a port of moby's ``fileutils`` matcher (``**``,
negation with ``!``, a pattern matching a parent directory excludes everything below it), so
we wrap it instead of writing another. BuildKit reads ``.dockerignore`` from the root of the
build context; the Dockerfile is sent separately, so unlike the classic builder nothing is
re-included for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from docker.utils.build import PatternMatcher


def read_patterns(context: Path) -> list[str]:
    """The patterns of ``context/.dockerignore`` as docker reads them (comments and blanks dropped)."""
    try:
        text = (context / ".dockerignore").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


@dataclass
class DockerIgnore:
    """The exclusion rules of one build context, with a per-path memo (impact asks many times)."""

    context: Path
    patterns: list[str]
    _matcher: PatternMatcher = field(init=False, repr=False)
    _memo: dict[str, bool] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._matcher = PatternMatcher(list(self.patterns))

    @classmethod
    def load(cls, context: Path) -> DockerIgnore:
        return cls(context, read_patterns(context))

    def excluded(self, rel: str) -> bool:
        """True when the context-relative POSIX path ``rel`` never reaches the builder."""
        if not self.patterns:
            return False
        hit = self._memo.get(rel)
        if hit is None:
            hit = bool(self._matcher.matches(rel))
            if len(self._memo) > 200_000:
                self._memo.clear()
            self._memo[rel] = hit
        return hit

    def may_include_below(self, rel_dir: str) -> bool:
        """False when ``rel_dir`` is excluded and no ``!`` pattern can re-include anything under it.

        This is the walk-pruning rule of ``PatternMatcher.walk``, so a directory walk can skip
        excluded trees (``target/``) without changing the result.
        """
        if not self.excluded(rel_dir):
            return True
        return any(p.exclusion and p.cleaned_pattern.startswith(rel_dir) for p in self._matcher.patterns)
