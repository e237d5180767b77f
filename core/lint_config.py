"""Silencing lint codes from ``attune-console.toml`` in the workspace root.

```toml
[check]
ignore = ["AC130"]                      # everywhere
[check.per-file-ignores]
"docker/Dockerfile.pack-binaries" = ["AC101", "AC102"]
```

A code may be given as a prefix (``"AC14"`` silences AC140-AC149). Unknown keys are an
error with file and line, so a typo does not silently keep a lint on.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from attune_console.core.cargo import line_of, read_toml
from attune_console.core.errors import InputError

CONFIG_NAME = "attune-console.toml"


@dataclass(frozen=True)
class LintConfig:
    ignore: tuple[str, ...] = ()
    per_file: dict[str, tuple[str, ...]] = field(default_factory=dict)
    file: Path | None = None

    def silenced(self, code: str, rel_file: str | None) -> bool:
        if any(code.startswith(c) for c in self.ignore):
            return True
        if rel_file is None:
            return False
        for pattern, codes in self.per_file.items():
            if fnmatch.fnmatchcase(rel_file, pattern) and any(code.startswith(c) for c in codes):
                return True
        return False


def _codes(value: object, path: Path, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise InputError(
            f'{key}: expected a list of codes like ["AC101"]', path, line_of(path, key.split(".")[-1])
        )
    return tuple(c.strip().upper() for c in value)


def load_lint_config(root: Path) -> LintConfig:
    """Read ``root/attune-console.toml``; no file means nothing is silenced."""
    path = root / CONFIG_NAME
    if not path.is_file():
        return LintConfig()
    doc = read_toml(path)
    check = doc.get("check", {})
    if not isinstance(check, dict):
        raise InputError("[check] must be a table", path, line_of(path, "check"))
    unknown = set(check) - {"ignore", "per-file-ignores"}
    if unknown:
        key = sorted(unknown)[0]
        raise InputError(
            f"unknown key check.{key} (known: ignore, per-file-ignores)", path, line_of(path, key)
        )
    per_file_raw = check.get("per-file-ignores", {})
    if not isinstance(per_file_raw, dict):
        raise InputError("[check.per-file-ignores] must be a table", path, line_of(path, "per-file-ignores"))
    return LintConfig(
        ignore=_codes(check.get("ignore", []), path, "check.ignore"),
        per_file={str(k): _codes(v, path, f"check.per-file-ignores.{k}") for k, v in per_file_raw.items()},
        file=path,
    )
