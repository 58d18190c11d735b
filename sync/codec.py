"""The sync batch format (schema version 1): msgpack, columnar, delta-encoded, compressed.

A batch travels as an *envelope* (a msgpack map)::

    {"v": 1,              schema version; any other value is rejected
     "gw": "gw-7f3a",     gateway id
     "sq": 42,            batch sequence number: (gw, sq) makes an upload idempotent
     "ts": 1709272800000, optional: when the gateway built it (UTC ms; default 0)
     "z": 1,              1 when "b" is zlib-compressed (used only when it is smaller)
     "b": <bytes>}        the body

The body maps a record kind (``cgm``, ``meter``, ``heart_rate``, ``insulin``, ``carbs``,
``pump_status``, ``pump_command``, ``command_result``, ``suggestion``, ``decision``, ``alarm``,
``checkpoint``) to ``{"n": rows, "c": {column: encoded}}``; the columns of each kind are listed in
:data:`KINDS` (wire key → field) and encoded by :mod:`sync.columns`. Every column is optional: a
missing one takes its default, so an older gateway's batch still decodes; keys this version does
not know are rejected (a newer sender must bump ``v``). Each row also carries ``id`` (the edge
row id, for idempotent storage of events) and, for readings and treatments, ``or`` (origin).

Precision: readings, treatments, pump data, suggestions and decisions are lossless (numbers are
scaled to the fewest decimals that reproduce them exactly). Twin checkpoints are an opaque blob
plus summary numbers; the summaries are quantized by unit (:func:`summary_step`): ``*_mg_dl``
1 mg/dL (a CGM's own resolution), ``*_mg_dl_per_min`` 0.1, ``*_u`` and ``*_u_per_h`` 0.01 U (finer
than any pump's 0.05 U step), ``*_g``, ``*_pct`` and ``*_min`` 1, anything else 0.001. Only the newest checkpoint of a batch carries its blob by
default (intermediate blobs are low value; see ``blobs=``).

Decoding is bounded: :data:`MAX_WIRE_BYTES` on the wire, :data:`MAX_BODY_BYTES` after
decompression, :data:`MAX_ROWS` rows; msgpack runs with ``strict_map_key`` and size limits.
Everything malformed raises :class:`~sync.errors.PayloadError` (``PayloadTooLargeError`` for
sizes), naming where.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgpack

from edgetwin.messages import (
    Alarm,
    CarbEntry,
    CgmReading,
    CgmStatus,
    CommandResult,
    HeartRateReading,
    InsulinDelivery,
    MeterReading,
    PumpCommand,
    PumpStatus,
    Suggestion,
)
from edgetwin.store.records import GateDecision, GateFinding, TwinCheckpoint
from edgetwin.timeutil import from_epoch_ms, to_epoch_ms
from sync import columns as C
from sync.errors import PayloadError, PayloadTooLargeError
from sync.zdict import ZDICT_V1

__all__ = [
    "KINDS",
    "MAX_BODY_BYTES",
    "MAX_ROWS",
    "MAX_WIRE_BYTES",
    "SCHEMA_VERSION",
    "SyncBatch",
    "WireRecord",
    "decode_batch",
    "encode_batch",
    "summary_step",
]

SCHEMA_VERSION = 1
MAX_WIRE_BYTES = 4 * 1024 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_ROWS = 200_000
GATEWAY_ID_MAX = 64


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One record in a batch: its kind (table), the gateway's row id, the record, its origin."""

    kind: str
    edge_id: int
    record: Any
    origin: str = ""


@dataclass(frozen=True, slots=True)
class SyncBatch:
    gateway_id: str
    batch_seq: int
    sent_ms: int
    records: tuple[WireRecord, ...]


# --- column specs --------------------------------------------------------------------------

ColType = Literal[
    "time", "reltime", "num", "int", "str", "flag", "bytes", "raw", "status", "rr", "findings", "opt_bool"
]


@dataclass(frozen=True)
class Col:
    key: str
    attr: str
    type: ColType
    default: Any = None


@dataclass(frozen=True)
class Kind:
    name: str
    cls: Callable[..., Any]
    cols: tuple[Col, ...]
    has_origin: bool = False

    @property
    def cols_time(self) -> str:
        """The attribute holding the record's time (the first time column)."""
        return next(c.attr for c in self.cols if c.type == "time")


def _t(key: str = "t", attr: str = "time_utc") -> Col:
    return Col(key, attr, "time", 0)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("cgm", CgmReading, (
            _t(), Col("g", "glucose_mg_dl", "num"), Col("dv", "device_id", "str", ""),
            Col("sq", "sequence", "int"), Col("tr", "trend_mg_dl_per_min", "num"),
            Col("ql", "quality_pct", "num"), Col("st", "status", "status", frozenset()),
            Col("bf", "backfilled", "flag", False),
        ), has_origin=True),
        Kind("meter", MeterReading, (
            _t(), Col("g", "glucose_mg_dl", "num"), Col("dv", "device_id", "str", ""), Col("sq", "sequence", "int"),
        ), has_origin=True),
        Kind("heart_rate", HeartRateReading, (
            _t(), Col("hr", "heart_rate_bpm", "int"), Col("dv", "device_id", "str", ""),
            Col("rr", "rr_intervals_s", "rr", ()), Col("ee", "energy_expended_kj", "int"),
            Col("sc", "sensor_contact", "opt_bool"),
        )),
        Kind("insulin", InsulinDelivery, (
            _t(), Col("u", "units", "num"), Col("k", "kind", "str", ""), Col("dv", "device_id", "str", ""),
            Col("du", "duration_min", "num", 0.0), Col("sq", "sequence", "int"),
        ), has_origin=True),
        Kind("carbs", CarbEntry, (_t(), Col("gr", "grams", "num"), Col("src", "source", "str", "patient")),
             has_origin=True),
        Kind("pump_status", PumpStatus, (
            _t(), Col("dv", "device_id", "str", ""), Col("rs", "reservoir_u", "num"),
            Col("su", "suspended", "flag", False), Col("bo", "bolusing", "flag", False),
            Col("br", "basal_rate_u_per_h", "num"), Col("tb", "temp_basal_u_per_h", "num"),
            Col("tm", "temp_basal_remaining_min", "num", 0.0), Col("bt", "battery_pct", "num"),
            Col("oc", "occluded", "flag", False), Col("iob", "insulin_on_board_u", "num"),
        )),
        Kind("pump_command", PumpCommand, (
            Col("ci", "command_id", "raw", ""), Col("k", "kind", "str", ""), _t("t", "created_utc"),
            Col("r", "rate_u_per_h", "num"), Col("du", "duration_min", "num"), Col("u", "units", "num"),
        )),
        Kind("command_result", CommandResult, (
            Col("ci", "command_id", "raw", ""), _t(), Col("ok", "confirmed", "flag", False),
            Col("dt", "detail", "str", ""),
        )),
        Kind("suggestion", Suggestion, (
            _t("t", "created_utc"), Col("x", "expires_utc", "reltime", 0), Col("k", "kind", "str", ""),
            Col("rs", "reason", "str", ""), Col("r", "rate_u_per_h", "num"), Col("du", "duration_min", "num"),
            Col("u", "units", "num"), Col("c", "carbs_g", "num"), Col("rv", "reservoir_u", "num"),
        )),
        Kind("decision", GateDecision, (
            _t(), Col("s", "suggestion_id", "int"), Col("o", "outcome", "str", ""),
            Col("f", "findings", "findings", ()), Col("rs", "result_suggestion_id", "int"),
        )),
        Kind("alarm", Alarm, (
            _t(), Col("k", "kind", "str", ""), Col("msg", "message", "str", ""),
            Col("sv", "severity", "str", "warning"),
        )),
        Kind("checkpoint", TwinCheckpoint, (
            _t(), Col("fm", "format", "str", ""), Col("ver", "version", "int", 0), Col("b", "blob", "bytes"),
        )),
    )
}  # fmt: skip

_COLUMN_KEYS = {name: {c.key for c in k.cols} | {"id", "or", "s"} for name, k in KINDS.items()}


def summary_step(name: str) -> float:
    """The precision a twin summary value is synced at, from its unit suffix."""
    for suffix, step in (
        ("_mg_dl_per_min", 0.1),
        ("_mg_dl", 1.0),
        ("_u_per_h", 0.01),
        ("_u", 0.01),
        ("_g", 1.0),
        ("_pct", 1.0),
        ("_min", 1.0),
    ):
        if name.endswith(suffix):
            return step
    return 1e-3


# --- encoding ------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if hasattr(value, "tzinfo") and hasattr(value, "isoformat"):
        return to_epoch_ms(value)
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
        return value.value
    return value


def _encode_col(col: Col, values: list[Any], base_ms: int, times: list[int]) -> Any:
    vals = [_plain(v) for v in values]
    if col.type == "time":
        return C.enc_time([v - base_ms for v in vals])
    if col.type == "reltime":
        return C.enc_int([v - t for v, t in zip(vals, times, strict=True)])
    if col.type == "num":
        return C.enc_num(vals)
    if col.type == "int":
        return C.enc_int(vals)
    if col.type == "str":
        return C.enc_str(vals)
    if col.type == "flag":
        return C.enc_flag(vals)
    if col.type == "bytes":
        return C.enc_bytes(vals)
    if col.type == "status":
        return C.enc_str([",".join(sorted(s.value for s in v)) for v in values])
    if col.type == "rr":
        return C.enc_raw([list(v) for v in values])
    if col.type == "findings":
        return C.enc_raw(
            [[{"rule": f.rule, "action": f.action, "message": f.message, "values": dict(f.values)} for f in v]
             for v in values]
        )  # fmt: skip
    return C.enc_raw(vals)


def _latest_blob(records: Sequence[WireRecord]) -> list[bytes | None]:
    blobs: list[bytes | None] = [None] * len(records)
    for i in range(len(records) - 1, -1, -1):
        if records[i].record.blob is not None:
            blobs[i] = records[i].record.blob
            break
    return blobs


def encode_body(
    records: Iterable[WireRecord], *, blobs: Literal["latest", "all", "none"] = "latest"
) -> bytes:
    """The msgpack body of a batch (uncompressed)."""
    by_kind: dict[str, list[WireRecord]] = {}
    for r in records:
        if r.kind not in KINDS:
            raise ValueError(f"cannot sync records of kind {r.kind!r}")
        by_kind.setdefault(r.kind, []).append(r)
    body: dict[str, Any] = {}
    all_times = [
        to_epoch_ms(getattr(r.record, KINDS[r.kind].cols_time)) for rs in by_kind.values() for r in rs
    ]
    base_ms = min(all_times, default=0)
    if by_kind:
        body["t0"] = base_ms
    for name, recs in by_kind.items():
        kind = KINDS[name]
        times = [to_epoch_ms(getattr(r.record, kind.cols_time)) for r in recs]
        cols: dict[str, Any] = {"id": C.enc_int([r.edge_id for r in recs])}
        for col in kind.cols:
            if col.type == "bytes" and name == "checkpoint":
                if blobs == "latest":
                    values: list[Any] = _latest_blob(recs)
                elif blobs == "all":
                    values = [r.record.blob for r in recs]
                else:
                    values = [None] * len(recs)
                if any(v is not None for v in values):
                    cols[col.key] = C.enc_bytes(values)
                continue
            values = [getattr(r.record, col.attr) for r in recs]
            if all(v == col.default for v in values) and col.type not in ("time", "reltime"):
                continue  # an all-default column is left out: the decoder restores it
            cols[col.key] = _encode_col(col, values, base_ms, times)
        if kind.has_origin:
            cols["or"] = C.enc_str([r.origin for r in recs])
        if name == "checkpoint":
            cols["s"] = _encode_summaries([r.record.summary for r in recs])
        body[name] = {"n": len(recs), "c": cols}
    return msgpack.packb(body, use_bin_type=True)


def _encode_summaries(summaries: list[Any]) -> dict[str, Any]:
    keys = sorted({k for s in summaries for k in s})
    return {
        "k": keys,
        "c": [C.enc_num([s.get(k) for s in summaries], summary_step(k)) for k in keys],
    }


def encode_batch(
    gateway_id: str,
    batch_seq: int,
    sent_ms: int,
    records: Iterable[WireRecord],
    *,
    blobs: Literal["latest", "all", "none"] = "latest",
    compress: bool = True,
) -> bytes:
    """A whole batch (envelope + body) ready to upload."""
    if not gateway_id or len(gateway_id) > GATEWAY_ID_MAX:
        raise ValueError("gateway_id must be 1..64 characters")
    body = encode_body(records, blobs=blobs)
    z = 0
    if compress:
        c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, ZDICT_V1)
        packed = c.compress(body) + c.flush()
        if len(packed) < len(body):
            body, z = packed, 2
    env: dict[str, Any] = {"v": SCHEMA_VERSION, "gw": gateway_id, "sq": int(batch_seq), "z": z, "b": body}
    if sent_ms:
        env["ts"] = int(sent_ms)
    return msgpack.packb(env, use_bin_type=True)


# --- decoding ------------------------------------------------------------------------------

_UNPACK_ERRORS = (ValueError, TypeError, msgpack.UnpackException, OverflowError, RecursionError)


def _unpack(data: bytes, where: str, limit: int) -> Any:
    if len(data) > limit:
        raise PayloadTooLargeError(f"{len(data)} bytes is over the {limit}-byte limit", where=where)
    try:
        # unpackb bounds every string/array/map by the (already limited) buffer length.
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True, max_ext_len=0)
    except _UNPACK_ERRORS as exc:
        raise PayloadError(f"not valid msgpack ({type(exc).__name__}: {exc})", where=where) from None


def _inflate(data: bytes, z: int) -> bytes:
    d = zlib.decompressobj() if z == 1 else zlib.decompressobj(-15, ZDICT_V1)
    try:
        out = d.decompress(data, MAX_BODY_BYTES)
    except zlib.error as exc:
        raise PayloadError(f"bad compressed body ({exc})", where="envelope.b") from None
    if d.unconsumed_tail:
        raise PayloadTooLargeError(f"body inflates beyond {MAX_BODY_BYTES} bytes", where="envelope.b")
    if not d.eof:
        raise PayloadError("compressed body is truncated", where="envelope.b")
    if d.unused_data:
        raise PayloadError("trailing bytes after the compressed body", where="envelope.b")
    return out


def _int_field(env: dict[str, Any], key: str, lo: int, hi: int) -> int:
    v = env.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise PayloadError(f"expected an integer in [{lo}, {hi}]", where=f"envelope.{key}")
    return v


def decode_envelope(data: bytes) -> tuple[str, int, int, bytes]:
    """(gateway id, batch seq, sent ms, body) after checking the envelope; body inflated."""
    if not isinstance(data, (bytes, bytearray)):
        raise PayloadError("expected bytes", where="envelope")
    if len(data) > MAX_WIRE_BYTES:
        raise PayloadTooLargeError(
            f"{len(data)} bytes is over the {MAX_WIRE_BYTES}-byte limit", where="envelope"
        )
    env = _unpack(bytes(data), "envelope", MAX_WIRE_BYTES)
    if not isinstance(env, dict):
        raise PayloadError("expected a map", where="envelope")
    unknown = set(env) - {"v", "gw", "sq", "ts", "z", "b"}
    if unknown:
        raise PayloadError(f"unknown keys {sorted(map(str, unknown))}", where="envelope")
    version = env.get("v")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise PayloadError(
            f"unknown schema version {version!r} (this side reads {SCHEMA_VERSION})", where="envelope.v"
        )
    gw = env.get("gw")
    if not isinstance(gw, str) or not 0 < len(gw) <= GATEWAY_ID_MAX:
        raise PayloadError("missing or bad gateway id", where="envelope.gw")
    seq = _int_field(env, "sq", 1, 2**62)
    ts = _int_field(env, "ts", 0, 2**62) if "ts" in env else 0
    z = _int_field(env, "z", 0, 2) if "z" in env else 0
    body = env.get("b", b"")
    if not isinstance(body, bytes):
        raise PayloadError("body must be bytes", where="envelope.b")
    if z:
        body = _inflate(body, z)
    elif len(body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError("body too large", where="envelope.b")
    return gw, seq, ts, body


def decode_batch(data: bytes) -> SyncBatch:
    """Decode and validate a whole batch; PayloadError on anything malformed."""
    gw, seq, ts, raw_body = decode_envelope(data)
    body = _unpack(raw_body, "body", MAX_BODY_BYTES) if raw_body else {}
    if not isinstance(body, dict):
        raise PayloadError("expected a map of kinds", where="body")
    base_ms = body.pop("t0", 0)
    if not isinstance(base_ms, int) or isinstance(base_ms, bool) or not 0 <= base_ms < 2**53:
        raise PayloadError("bad time base", where="body.t0")
    unknown = set(body) - set(KINDS)
    if unknown:
        raise PayloadError(f"unknown record kinds {sorted(map(str, unknown))}", where="body")
    total = 0
    out: list[WireRecord] = []
    for name, section in body.items():
        kind = KINDS[name]
        if not isinstance(section, dict) or set(section) - {"n", "c"}:
            raise PayloadError("expected {n, c}", where=name)
        n = section.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_ROWS:
            raise PayloadError(f"row count must be 0..{MAX_ROWS}", where=f"{name}.n")
        total += n
        if total > MAX_ROWS:
            raise PayloadTooLargeError(f"more than {MAX_ROWS} rows", where=name)
        out.extend(_decode_kind(kind, n, section.get("c", {}), base_ms))
    return SyncBatch(gw, seq, ts, tuple(out))


def _decode_col(col: Col, obj: Any, n: int, where: str, base_ms: int, times: list[int]) -> list[Any]:
    if col.type == "time":
        return [
            from_epoch_ms(v) for v in _check_times([base_ms + v for v in C.dec_time(obj, n, where)], where)
        ]
    if col.type == "reltime":
        rel = C.dec_int(obj, n, where)
        if any(v is None for v in rel):
            raise PayloadError("missing relative time", where=where)
        absolute = [t + (v or 0) for t, v in zip(times, rel, strict=True)]
        return [from_epoch_ms(v) for v in _check_times(absolute, where)]
    if col.type == "num":
        return C.dec_num(obj, n, where)
    if col.type == "int":
        return C.dec_int(obj, n, where)
    if col.type == "str":
        return C.dec_str(obj, n, where)
    if col.type == "flag":
        return C.dec_flag(obj, n, where)
    if col.type == "bytes":
        return C.dec_bytes(obj, n, where)
    if col.type == "status":
        try:
            return [
                frozenset(CgmStatus(s) for s in v.split(",")) if v else frozenset()
                for v in C.dec_str(obj, n, where)
            ]
        except ValueError:
            raise PayloadError("unknown CGM status", where=where) from None
    if col.type == "rr":
        vals = C.dec_raw(obj, n, where)
        if not all(isinstance(v, list) and all(isinstance(x, float) for x in v) for v in vals):
            raise PayloadError("expected lists of floats", where=where)
        return [tuple(v) for v in vals]
    if col.type == "findings":
        return [_findings(v, where) for v in C.dec_raw(obj, n, where)]
    if col.type == "opt_bool":
        vals = C.dec_raw(obj, n, where)
        if not all(v is None or isinstance(v, bool) for v in vals):
            raise PayloadError("expected true, false or nil", where=where)
        return vals
    vals = C.dec_raw(obj, n, where)
    if not all(isinstance(v, str) for v in vals):
        raise PayloadError("expected text", where=where)
    return vals


def _check_times(values: list[int], where: str) -> list[int]:
    for v in values:
        if not 0 <= v < 253402300800000:  # up to year 9999
            raise PayloadError("time out of range", where=where)
    return values


def _findings(v: Any, where: str) -> tuple[GateFinding, ...]:
    if not isinstance(v, list):
        raise PayloadError("expected a list of findings", where=where)
    out = []
    for f in v:
        if not isinstance(f, dict) or set(f) - {"rule", "action", "message", "values"}:
            raise PayloadError("bad finding", where=where)
        values = f.get("values", {})
        if not isinstance(values, dict):
            raise PayloadError("finding values must be a map", where=where)
        try:
            out.append(
                GateFinding(
                    str(f.get("rule", "")), str(f.get("action", "")), str(f.get("message", "")), values
                )
            )
        except (ValueError, TypeError) as exc:
            raise PayloadError(str(exc), where=where) from None
    return tuple(out)


def _decode_kind(kind: Kind, n: int, cols: Any, base_ms: int) -> list[WireRecord]:
    where = kind.name
    if not isinstance(cols, dict):
        raise PayloadError("expected a map of columns", where=f"{where}.c")
    unknown = set(cols) - _COLUMN_KEYS[kind.name]
    if unknown:
        raise PayloadError(f"unknown columns {sorted(map(str, unknown))}", where=f"{where}.c")
    ids = C.dec_int(cols["id"], n, f"{where}.id") if "id" in cols else [0] * n
    origins = C.dec_str(cols["or"], n, f"{where}.or") if "or" in cols and kind.has_origin else [""] * n
    values: dict[str, list[Any]] = {}
    times: list[int] = [base_ms] * n
    for col in kind.cols:
        if col.key in cols:
            values[col.attr] = _decode_col(col, cols[col.key], n, f"{where}.{col.key}", base_ms, times)
            if col.attr == kind.cols_time:
                times = [to_epoch_ms(t) for t in values[col.attr]]
        elif col.type == "time":
            values[col.attr] = [from_epoch_ms(base_ms)] * n
        elif col.type == "reltime":
            values[col.attr] = [from_epoch_ms(t) for t in times]
        else:
            values[col.attr] = [col.default] * n
    summaries: list[dict[str, float]] = [{} for _ in range(n)]
    if kind.name == "checkpoint" and "s" in cols:
        summaries = _decode_summaries(cols["s"], n, f"{where}.s")
    out = []
    for i in range(n):
        kwargs = {attr: vals[i] for attr, vals in values.items()}
        if kind.name == "checkpoint":
            kwargs["summary"] = summaries[i]
        try:
            record = kind.cls(**kwargs)
        except (ValueError, TypeError, KeyError) as exc:
            raise PayloadError(f"row {i}: {exc}", where=where) from None
        edge_id = ids[i]
        if edge_id is None or edge_id < 0:
            raise PayloadError(f"row {i}: missing edge id", where=f"{where}.id")
        out.append(WireRecord(kind.name, edge_id, record, origins[i]))
    return out


def _decode_summaries(obj: Any, n: int, where: str) -> list[dict[str, float]]:
    if not isinstance(obj, dict) or set(obj) - {"k", "c"}:
        raise PayloadError("expected {k, c}", where=where)
    keys, cols = obj.get("k", []), obj.get("c", [])
    if not isinstance(keys, list) or not isinstance(cols, list) or len(keys) != len(cols):
        raise PayloadError("keys and columns must be lists of one length", where=where)
    if not all(isinstance(k, str) and 0 < len(k) <= 64 for k in keys) or len(set(keys)) != len(keys):
        raise PayloadError("bad summary names", where=where)
    out: list[dict[str, float]] = [{} for _ in range(n)]
    for key, col in zip(keys, cols, strict=True):
        for i, v in enumerate(C.dec_num(col, n, f"{where}.{key}")):
            if v is not None:
                out[i][key] = v
    return out
