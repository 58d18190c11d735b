"""Cloud configuration: a TOML file's ``[cloud]`` table, overridden by the environment.

::

    [cloud]
    database_url = "sqlite:///edgetwin-cloud.db"   # or postgresql://user:pw@host:5432/edgetwin
    host = "127.0.0.1"                              # bind address (put TLS in a reverse proxy)
    port = 8080
    public_url = "https://cloud.example.org"        # written into issued credentials
    identify = "sync.cloud.identify:twin_identify"  # re-personalisation ("module:function"); "" turns it off
    runner = "local"                                # local | local:N | dask://HOST:PORT | ray[://HOST:PORT]
    job_interval_h = 24.0
    window_days = 14.0
    min_readings = 288

Environment: ``DATABASE_URL`` overrides ``database_url``; ``EDGETWIN_CLOUD_IDENTIFY`` and
``EDGETWIN_CLOUD_RUNNER`` override ``identify`` and ``runner``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from edgetwin.errors import ConfigError

__all__ = ["CloudConfig"]


@dataclass(frozen=True)
class CloudConfig:
    database_url: str = "sqlite:///edgetwin-cloud.db"
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    identify: str = "sync.cloud.identify:twin_identify"
    runner: str = "local"
    job_interval_h: float = 24.0
    window_days: float = 14.0
    min_readings: int = 288

    @property
    def url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
    ) -> CloudConfig:
        env = os.environ if env is None else env
        cfg = cls()
        if path is not None:
            source = str(path)
            try:
                data = tomllib.loads(Path(path).read_text())
            except OSError as exc:
                raise ConfigError("file", f"cannot read ({exc.strerror})", source=source) from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError("file", f"not valid TOML ({exc})", source=source) from None
            table = data.get("cloud", {})
            if not isinstance(table, dict):
                raise ConfigError("cloud", "must be a table", source=source)
            cfg = cfg.with_values(table, source)
        overrides = {k: env[e] for k, e in (("database_url", "DATABASE_URL"), ("identify", "EDGETWIN_CLOUD_IDENTIFY"),
                                             ("runner", "EDGETWIN_CLOUD_RUNNER")) if env.get(e)}  # fmt: skip
        return cfg.with_values(overrides, "environment")

    def with_values(self, values: Mapping[str, Any], source: str = "") -> CloudConfig:
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"cloud.{key}", "unknown key", source=source)
            want = type(getattr(self, key))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, want) or isinstance(value, bool):
                raise ConfigError(f"cloud.{key}", f"must be a {want.__name__}, got {value!r}", source=source)
            changes[key] = value
        cfg = replace(self, **changes)
        if not 0 <= cfg.port <= 65535:
            raise ConfigError("cloud.port", "must be 0..65535", source=source)
        if cfg.job_interval_h <= 0 or cfg.window_days <= 0 or cfg.min_readings < 1:
            raise ConfigError("cloud.job_interval_h", "job settings must be positive", source=source)
        if not cfg.database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigError(
                "cloud.database_url", "must start with sqlite:/// or postgresql://", source=source
            )
        return cfg
