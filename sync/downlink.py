"""Downlink of twin parameters: versioned, signed updates, checked before adoption, rollback.

Wire format (msgpack)::

    {"v": 1,                                   update schema version (others rejected)
     "u": {"patient": "p-001", "version": 7,   strictly increasing per patient
           "created_ms": ..., "basis": "job 2024-03-02 (14 days of data)",
           "params": {"BW": 72.1, "kabs": 0.09, ... every name in PARAM_NAMES}},
     "sig": <HMAC-SHA256 over msgpack(u) with the gateway's key>}

The gateway adopts an update only if the signature verifies with its own key, it is for its
patient, its version is newer than the current one (and than any version rolled back), every
parameter is present, finite and inside :data:`edgetwin.model.params.PARAM_BOUNDS`. Adoption
writes ``current.json`` atomically and keeps the replaced parameters as ``previous.json``;
:meth:`ParamsKeeper.rollback` restores them and remembers the rejected version.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from edgetwin.model.params import PARAM_NAMES, PatientParams
from sync.errors import PayloadError, UpdateRejectedError

if TYPE_CHECKING:
    from sync.auth import Credential
    from sync.transport import CloudClient

__all__ = [
    "UPDATE_VERSION",
    "ParamUpdate",
    "ParamsKeeper",
    "decode_update",
    "encode_update",
    "validate_params",
]

UPDATE_VERSION = 1
MAX_UPDATE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ParamUpdate:
    patient_id: str
    version: int
    created_ms: int
    params: Mapping[str, float] = field(default_factory=dict)
    basis: str = ""

    def to_map(self) -> dict[str, Any]:
        return {
            "patient": self.patient_id,
            "version": self.version,
            "created_ms": self.created_ms,
            "basis": self.basis,
            "params": {k: float(v) for k, v in sorted(self.params.items())},
        }


def _sig(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, b"edgetwin-param-update\n" + body, hashlib.sha256).digest()


def encode_update(update: ParamUpdate, key: bytes) -> bytes:
    body = msgpack.packb(update.to_map(), use_bin_type=True)
    return msgpack.packb({"v": UPDATE_VERSION, "u": body, "sig": _sig(key, body)}, use_bin_type=True)


def decode_update(data: bytes, key: bytes) -> ParamUpdate:
    """Verify and decode; :class:`UpdateRejectedError` for a bad signature, PayloadError if malformed."""
    if len(data) > MAX_UPDATE_BYTES:
        raise PayloadError("parameter update too large", where="update")
    try:
        env = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise PayloadError(f"not valid msgpack ({type(exc).__name__})", where="update") from None
    if not isinstance(env, dict) or set(env) != {"v", "u", "sig"}:
        raise PayloadError("expected {v, u, sig}", where="update")
    if env["v"] != UPDATE_VERSION:
        raise PayloadError(f"unknown update version {env['v']!r}", where="update.v")
    body, sig = env["u"], env["sig"]
    if not isinstance(body, bytes) or not isinstance(sig, bytes):
        raise PayloadError("u and sig must be bytes", where="update")
    if not hmac.compare_digest(sig, _sig(key, body)):
        raise UpdateRejectedError("parameter update signature does not verify")
    try:
        u = msgpack.unpackb(body, raw=False, strict_map_key=True)
        if not isinstance(u, dict) or set(u) - {"patient", "version", "created_ms", "basis", "params"}:
            raise ValueError("unexpected keys")
        params = u["params"]
        if not isinstance(params, dict) or not all(isinstance(v, (int, float)) for v in params.values()):
            raise ValueError("params must map names to numbers")
        version, created = u["version"], u.get("created_ms", 0)
        if not isinstance(version, int) or not isinstance(created, int):
            raise ValueError("version and created_ms must be integers")
        return ParamUpdate(str(u["patient"]), version, created, {str(k): float(v) for k, v in params.items()},
                           str(u.get("basis", "")))  # fmt: skip
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
        raise PayloadError(f"malformed update ({exc})", where="update.u") from None


def validate_params(params: Mapping[str, float], name: str = "personalised") -> PatientParams:
    """The parameters as a PatientParams if complete, finite and physiological; else rejected."""
    problems = []
    missing = [n for n in PARAM_NAMES if n not in params]
    extra = sorted(set(params) - set(PARAM_NAMES))
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if extra:
        problems.append(f"unknown {', '.join(extra)}")
    bad = [n for n in PARAM_NAMES if n in params and not math.isfinite(params[n])]
    if bad:
        problems.append(f"not finite: {', '.join(bad)}")
    if problems:
        raise UpdateRejectedError("parameter update rejected", problems)
    try:
        pp = PatientParams.from_vector(name, [float(params[n]) for n in PARAM_NAMES])
    except ValueError as exc:
        raise UpdateRejectedError("parameter update rejected", [str(exc)]) from None
    out = pp.out_of_bounds()
    if out:
        raise UpdateRejectedError("parameters outside physiological bounds", out)
    return pp


class ParamsKeeper:
    """Adopted parameters on disk: ``current.json``, ``previous.json`` and ``state.json``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _read(self, name: str) -> dict[str, Any] | None:
        p = self.dir / name
        if not p.exists():
            return None
        data: dict[str, Any] = json.loads(p.read_text())
        return data

    def _write(self, name: str, data: dict[str, Any]) -> None:
        p = self.dir / name
        tmp = p.with_name(p.name + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(data, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)

    @property
    def current_version(self) -> int:
        cur = self._read("current.json")
        return 0 if cur is None else int(cur["version"])

    @property
    def highest_seen(self) -> int:
        state = self._read("state.json") or {}
        return max(self.current_version, int(state.get("rolled_back_version", 0)))

    def current(self) -> PatientParams | None:
        cur = self._read("current.json")
        return None if cur is None else validate_params(cur["params"], cur.get("name", "personalised"))

    def adopt(self, update: ParamUpdate, *, patient_id: str) -> PatientParams:
        """Check ``update`` and make it current; UpdateRejectedError (nothing changed) otherwise."""
        if update.patient_id != patient_id:
            raise UpdateRejectedError(f"update is for patient {update.patient_id!r}, not this gateway's")
        if update.version <= self.highest_seen:
            raise UpdateRejectedError(
                f"update version {update.version} is not newer than {self.highest_seen}"
            )
        pp = validate_params(update.params, f"{patient_id} v{update.version}")
        cur = self._read("current.json")
        if cur is not None:
            self._write("previous.json", cur)
        self._write(
            "current.json",
            {
                "version": update.version,
                "params": dict(update.params),
                "name": pp.name,
                "basis": update.basis,
            },
        )
        return pp

    def rollback(self) -> PatientParams | None:
        """Return to the previous parameters (None: back to the profile's defaults)."""
        cur = self._read("current.json")
        if cur is None:
            raise UpdateRejectedError("nothing to roll back")
        self._write("state.json", {"rolled_back_version": max(int(cur["version"]), self.highest_seen)})
        prev = self._read("previous.json")
        if prev is None:
            (self.dir / "current.json").unlink()
            return None
        self._write("current.json", prev)
        (self.dir / "previous.json").unlink()
        return validate_params(prev["params"], prev.get("name", "personalised"))


def pull_and_adopt(client: CloudClient, keeper: ParamsKeeper, credential: Credential) -> PatientParams | None:
    """Ask the cloud for parameters newer than any seen; verify, bound-check and adopt them.

    Returns the adopted parameters, or None when there is nothing newer. A bad update raises
    :class:`UpdateRejectedError` (or PayloadError) and leaves the current parameters in place.
    Blocking (HTTP): call through ``asyncio.to_thread`` from the gateway.
    """
    data = client.get_params(keeper.highest_seen)
    if data is None:
        return None
    update = decode_update(data, credential.key)
    return keeper.adopt(update, patient_id=credential.patient_id)
