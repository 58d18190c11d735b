"""Reading one table of a TOML file (a therapy profile, safety limits) with errors that name
the file and the problem."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgetwin.errors import ConfigError

__all__ = ["read_table"]


def read_table(path: str | Path, name: str) -> Mapping[str, Any]:
    """The ``[name]`` table of the file at ``path``, or its top level when it has no such table."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError("file", f"cannot read: {exc.strerror}", source=str(p)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("file", f"not valid TOML: {exc}", source=str(p)) from None
    table = data.get(name, data)
    if not isinstance(table, Mapping):
        raise ConfigError(name, "must be a table", source=str(p))
    return table
