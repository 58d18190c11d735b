"""Rows ↔ records: how each message is written to and read back from its table.

One place per table: the INSERT, the duplicate lookup (the record's identity) and the row →
record conversion. Identities (a second copy of the same thing is reported, not stored):

* ``cgm``: (device_id, time) — or (device_id, sequence) within :data:`SEQUENCE_WINDOW_MS` of the
  stored time, so a back-filled reading re-timed by a few seconds is still recognised;
* ``meter``: (device_id, time) or (device_id, sequence) in the same window;
* ``heart_rate``, ``pump_status``: (device_id, time);
* ``insulin``: (device_id, time, kind), or (device_id, sequence) in the window;
* ``carbs``: (source, time);
* ``pump_command``: command_id; ``command_result``: (command_id, time).

Suggestions, decisions, alarms and checkpoints are events: each add is a new row.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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

__all__ = ["SEQUENCE_WINDOW_MS", "TABLES", "Table", "table_for"]

SEQUENCE_WINDOW_MS = 15 * 60 * 1000
"""Two readings of one device with the same sequence number this close in time are one reading."""


def _ms(t: Any) -> int:
    return to_epoch_ms(t)


def _opt_bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=0.0, abs_tol=1e-9)


@dataclass(frozen=True)
class Table:
    """How one record type is stored."""

    name: str
    record_type: type
    time_column: str
    # (record, origin, received_ms) -> (sql, params)
    insert: Callable[[Any, str, int], tuple[str, tuple[Any, ...]]]
    # (conn, record) -> (row id, conflicting) of a stored duplicate, or None
    find_duplicate: Callable[[sqlite3.Connection, Any], tuple[int, bool] | None] | None
    from_row: Callable[[sqlite3.Row], Any]


# --- cgm -----------------------------------------------------------------------------------


def _cgm_insert(r: CgmReading, origin: str, received_ms: int) -> tuple[str, tuple[Any, ...]]:
    status = ",".join(sorted(s.value for s in r.status))
    return (
        "INSERT INTO cgm(time_ms, device_id, sequence, glucose_mg_dl, trend_mg_dl_per_min, quality_pct,"
        " status, backfilled, received_ms, origin) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            _ms(r.time_utc),
            r.device_id,
            r.sequence,
            r.glucose_mg_dl,
            r.trend_mg_dl_per_min,
            r.quality_pct,
            status,
            int(r.backfilled),
            received_ms,
            origin,
        ),
    )


def _sequenced_duplicate(
    conn: sqlite3.Connection,
    table: str,
    value_col: str,
    device_id: str,
    t_ms: int,
    seq: int | None,
    value: Any,
) -> tuple[int, bool] | None:
    if seq is None:
        row = conn.execute(
            f"SELECT id, {value_col} FROM {table} WHERE device_id = ? AND time_ms = ?", (device_id, t_ms)
        ).fetchone()
    else:
        row = conn.execute(
            f"SELECT id, {value_col} FROM {table} WHERE device_id = ? AND (time_ms = ? OR "
            f"(sequence = ? AND time_ms BETWEEN ? AND ?)) LIMIT 1",
            (device_id, t_ms, seq, t_ms - SEQUENCE_WINDOW_MS, t_ms + SEQUENCE_WINDOW_MS),
        ).fetchone()
    if row is None:
        return None
    return int(row[0]), not _same(row[1], value)


def _cgm_dup(conn: sqlite3.Connection, r: CgmReading) -> tuple[int, bool] | None:
    return _sequenced_duplicate(
        conn, "cgm", "glucose_mg_dl", r.device_id, _ms(r.time_utc), r.sequence, r.glucose_mg_dl
    )


def _cgm_row(row: sqlite3.Row) -> CgmReading:
    status = row["status"]
    return CgmReading(
        time_utc=from_epoch_ms(row["time_ms"]),
        glucose_mg_dl=row["glucose_mg_dl"],
        device_id=row["device_id"],
        sequence=row["sequence"],
        trend_mg_dl_per_min=row["trend_mg_dl_per_min"],
        quality_pct=row["quality_pct"],
        status=frozenset(CgmStatus(s) for s in status.split(",")) if status else frozenset(),
        backfilled=bool(row["backfilled"]),
    )


# --- meter ---------------------------------------------------------------------------------


def _meter_insert(r: MeterReading, origin: str, received_ms: int) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO meter(time_ms, device_id, sequence, glucose_mg_dl, received_ms, origin)"
        " VALUES (?,?,?,?,?,?)",
        (_ms(r.time_utc), r.device_id, r.sequence, r.glucose_mg_dl, received_ms, origin),
    )


def _meter_dup(conn: sqlite3.Connection, r: MeterReading) -> tuple[int, bool] | None:
    return _sequenced_duplicate(
        conn, "meter", "glucose_mg_dl", r.device_id, _ms(r.time_utc), r.sequence, r.glucose_mg_dl
    )


def _meter_row(row: sqlite3.Row) -> MeterReading:
    return MeterReading(
        time_utc=from_epoch_ms(row["time_ms"]),
        glucose_mg_dl=row["glucose_mg_dl"],
        device_id=row["device_id"],
        sequence=row["sequence"],
    )


# --- heart rate ----------------------------------------------------------------------------


def _hr_insert(r: HeartRateReading, origin: str, received_ms: int) -> tuple[str, tuple[Any, ...]]:
    rr = ",".join(repr(float(x)) for x in r.rr_intervals_s)
    contact = None if r.sensor_contact is None else int(r.sensor_contact)
    return (
        "INSERT INTO heart_rate(time_ms, device_id, heart_rate_bpm, rr_intervals_s, energy_expended_kj,"
        " sensor_contact, received_ms) VALUES (?,?,?,?,?,?,?)",
        (_ms(r.time_utc), r.device_id, r.heart_rate_bpm, rr, r.energy_expended_kj, contact, received_ms),
    )


def _hr_dup(conn: sqlite3.Connection, r: HeartRateReading) -> tuple[int, bool] | None:
    row = conn.execute(
        "SELECT id, heart_rate_bpm FROM heart_rate WHERE device_id = ? AND time_ms = ?",
        (r.device_id, _ms(r.time_utc)),
    ).fetchone()
    return None if row is None else (int(row[0]), row[1] != r.heart_rate_bpm)


def _hr_row(row: sqlite3.Row) -> HeartRateReading:
    rr = row["rr_intervals_s"]
    return HeartRateReading(
        time_utc=from_epoch_ms(row["time_ms"]),
        heart_rate_bpm=row["heart_rate_bpm"],
        device_id=row["device_id"],
        rr_intervals_s=tuple(float(x) for x in rr.split(",")) if rr else (),
        energy_expended_kj=row["energy_expended_kj"],
        sensor_contact=_opt_bool(row["sensor_contact"]),
    )


# --- insulin -------------------------------------------------------------------------------


def _insulin_insert(r: InsulinDelivery, origin: str, received_ms: int) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO insulin(time_ms, device_id, kind, units, duration_min, sequence, received_ms, origin)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (
            _ms(r.time_utc),
            r.device_id,
            r.kind.value,
            r.units,
            r.duration_min,
            r.sequence,
            received_ms,
            origin,
        ),
    )


def _insulin_dup(conn: sqlite3.Connection, r: InsulinDelivery) -> tuple[int, bool] | None:
    t = _ms(r.time_utc)
    if r.sequence is None:
        row = conn.execute(
            "SELECT id, units FROM insulin WHERE device_id = ? AND time_ms = ? AND kind = ?",
            (r.device_id, t, r.kind.value),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT id, units FROM insulin WHERE device_id = ? AND ((time_ms = ? AND kind = ?) OR "
            "(sequence = ? AND time_ms BETWEEN ? AND ?)) LIMIT 1",
            (r.device_id, t, r.kind.value, r.sequence, t - SEQUENCE_WINDOW_MS, t + SEQUENCE_WINDOW_MS),
        ).fetchone()
    return None if row is None else (int(row[0]), not _same(row[1], r.units))


def _insulin_row(row: sqlite3.Row) -> InsulinDelivery:
    return InsulinDelivery(
        time_utc=from_epoch_ms(row["time_ms"]),
        units=row["units"],
        kind=row["kind"],
        device_id=row["device_id"],
        duration_min=row["duration_min"],
        sequence=row["sequence"],
    )


# --- carbs ---------------------------------------------------------------------------------


def _carbs_insert(r: CarbEntry, origin: str, received_ms: int) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO carbs(time_ms, grams, source, received_ms, origin) VALUES (?,?,?,?,?)",
        (_ms(r.time_utc), r.grams, r.source, received_ms, origin),
    )


def _carbs_dup(conn: sqlite3.Connection, r: CarbEntry) -> tuple[int, bool] | None:
    row = conn.execute(
        "SELECT id, grams FROM carbs WHERE source = ? AND time_ms = ?", (r.source, _ms(r.time_utc))
    ).fetchone()
    return None if row is None else (int(row[0]), not _same(row[1], r.grams))


def _carbs_row(row: sqlite3.Row) -> CarbEntry:
    return CarbEntry(time_utc=from_epoch_ms(row["time_ms"]), grams=row["grams"], source=row["source"])


# --- pump status, commands, results --------------------------------------------------------


def _pump_insert(r: PumpStatus, origin: str, received_ms: int) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO pump_status(time_ms, device_id, reservoir_u, suspended, bolusing, basal_rate_u_per_h,"
        " temp_basal_u_per_h, temp_basal_remaining_min, battery_pct, occluded, insulin_on_board_u,"
        " received_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            _ms(r.time_utc),
            r.device_id,
            r.reservoir_u,
            int(r.suspended),
            int(r.bolusing),
            r.basal_rate_u_per_h,
            r.temp_basal_u_per_h,
            r.temp_basal_remaining_min,
            r.battery_pct,
            int(r.occluded),
            r.insulin_on_board_u,
            received_ms,
        ),
    )


def _pump_dup(conn: sqlite3.Connection, r: PumpStatus) -> tuple[int, bool] | None:
    row = conn.execute(
        "SELECT id, reservoir_u FROM pump_status WHERE device_id = ? AND time_ms = ?",
        (r.device_id, _ms(r.time_utc)),
    ).fetchone()
    return None if row is None else (int(row[0]), not _same(row[1], r.reservoir_u))


def _pump_row(row: sqlite3.Row) -> PumpStatus:
    return PumpStatus(
        time_utc=from_epoch_ms(row["time_ms"]),
        device_id=row["device_id"],
        reservoir_u=row["reservoir_u"],
        suspended=bool(row["suspended"]),
        bolusing=bool(row["bolusing"]),
        basal_rate_u_per_h=row["basal_rate_u_per_h"],
        temp_basal_u_per_h=row["temp_basal_u_per_h"],
        temp_basal_remaining_min=row["temp_basal_remaining_min"],
        battery_pct=row["battery_pct"],
        occluded=bool(row["occluded"]),
        insulin_on_board_u=row["insulin_on_board_u"],
    )


def _command_insert(r: PumpCommand, origin: str, received_ms: int) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO pump_command(command_id, kind, created_ms, rate_u_per_h, duration_min, units)"
        " VALUES (?,?,?,?,?,?)",
        (r.command_id, r.kind.value, _ms(r.created_utc), r.rate_u_per_h, r.duration_min, r.units),
    )


def _command_dup(conn: sqlite3.Connection, r: PumpCommand) -> tuple[int, bool] | None:
    row = conn.execute(
        "SELECT id, kind, units, rate_u_per_h FROM pump_command WHERE command_id = ?", (r.command_id,)
    ).fetchone()
    if row is None:
        return None
    same = row[1] == r.kind.value and _same(row[2], r.units) and _same(row[3], r.rate_u_per_h)
    return int(row[0]), not same


def _command_row(row: sqlite3.Row) -> PumpCommand:
    return PumpCommand(
        command_id=row["command_id"],
        kind=row["kind"],
        created_utc=from_epoch_ms(row["created_ms"]),
        rate_u_per_h=row["rate_u_per_h"],
        duration_min=row["duration_min"],
        units=row["units"],
    )


def _result_insert(r: CommandResult, origin: str, received_ms: int) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO command_result(command_id, time_ms, confirmed, detail) VALUES (?,?,?,?)",
        (r.command_id, _ms(r.time_utc), int(r.confirmed), r.detail),
    )


def _result_dup(conn: sqlite3.Connection, r: CommandResult) -> tuple[int, bool] | None:
    row = conn.execute(
        "SELECT id, confirmed FROM command_result WHERE command_id = ? AND time_ms = ?",
        (r.command_id, _ms(r.time_utc)),
    ).fetchone()
    return None if row is None else (int(row[0]), bool(row[1]) != r.confirmed)


def _result_row(row: sqlite3.Row) -> CommandResult:
    return CommandResult(
        command_id=row["command_id"],
        time_utc=from_epoch_ms(row["time_ms"]),
        confirmed=bool(row["confirmed"]),
        detail=row["detail"],
    )


# --- suggestions, decisions, alarms, checkpoints -------------------------------------------


def _suggestion_insert(r: Suggestion, origin: str, received_ms: int) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO suggestion(created_ms, expires_ms, kind, reason, rate_u_per_h, duration_min, units,"
        " carbs_g, reservoir_u) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            _ms(r.created_utc),
            _ms(r.expires_utc),
            r.kind.value,
            r.reason,
            r.rate_u_per_h,
            r.duration_min,
            r.units,
            r.carbs_g,
            r.reservoir_u,
        ),
    )


def _suggestion_row(row: sqlite3.Row) -> Suggestion:
    return Suggestion(
        created_utc=from_epoch_ms(row["created_ms"]),
        expires_utc=from_epoch_ms(row["expires_ms"]),
        kind=row["kind"],
        reason=row["reason"],
        rate_u_per_h=row["rate_u_per_h"],
        duration_min=row["duration_min"],
        units=row["units"],
        carbs_g=row["carbs_g"],
        reservoir_u=row["reservoir_u"],
    )


def findings_to_json(findings: tuple[GateFinding, ...]) -> str:
    return json.dumps(
        [
            {"rule": f.rule, "action": f.action, "message": f.message, "values": dict(f.values)}
            for f in findings
        ],
        sort_keys=True,
        allow_nan=False,
    )


def findings_from_json(text: str) -> tuple[GateFinding, ...]:
    return tuple(
        GateFinding(rule=d["rule"], action=d["action"], message=d["message"], values=d.get("values", {}))
        for d in json.loads(text)
    )


def _decision_insert(r: GateDecision, origin: str, received_ms: int) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO decision(time_ms, suggestion_id, outcome, findings, result_suggestion_id)"
        " VALUES (?,?,?,?,?)",
        (
            _ms(r.time_utc),
            r.suggestion_id,
            r.outcome.value,
            findings_to_json(r.findings),
            r.result_suggestion_id,
        ),
    )


def _decision_row(row: sqlite3.Row) -> GateDecision:
    return GateDecision(
        time_utc=from_epoch_ms(row["time_ms"]),
        suggestion_id=row["suggestion_id"],
        outcome=row["outcome"],
        findings=findings_from_json(row["findings"]),
        result_suggestion_id=row["result_suggestion_id"],
    )


def _alarm_insert(r: Alarm, origin: str, received_ms: int) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO alarm(time_ms, kind, message, severity) VALUES (?,?,?,?)",
        (_ms(r.time_utc), r.kind, r.message, r.severity),
    )


def _alarm_row(row: sqlite3.Row) -> Alarm:
    return Alarm(
        time_utc=from_epoch_ms(row["time_ms"]),
        kind=row["kind"],
        message=row["message"],
        severity=row["severity"],
    )


def _checkpoint_insert(r: TwinCheckpoint, origin: str, received_ms: int) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO checkpoint(time_ms, format, version, blob, summary) VALUES (?,?,?,?,?)",
        (_ms(r.time_utc), r.format, r.version, r.blob, json.dumps(dict(r.summary), sort_keys=True)),
    )


def _checkpoint_row(row: sqlite3.Row) -> TwinCheckpoint:
    return TwinCheckpoint(
        time_utc=from_epoch_ms(row["time_ms"]),
        format=row["format"],
        version=row["version"],
        blob=row["blob"],
        summary=json.loads(row["summary"]),
    )


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table("cgm", CgmReading, "time_ms", _cgm_insert, _cgm_dup, _cgm_row),
        Table("meter", MeterReading, "time_ms", _meter_insert, _meter_dup, _meter_row),
        Table("heart_rate", HeartRateReading, "time_ms", _hr_insert, _hr_dup, _hr_row),
        Table("insulin", InsulinDelivery, "time_ms", _insulin_insert, _insulin_dup, _insulin_row),
        Table("carbs", CarbEntry, "time_ms", _carbs_insert, _carbs_dup, _carbs_row),
        Table("pump_status", PumpStatus, "time_ms", _pump_insert, _pump_dup, _pump_row),
        Table("pump_command", PumpCommand, "created_ms", _command_insert, _command_dup, _command_row),
        Table("command_result", CommandResult, "time_ms", _result_insert, _result_dup, _result_row),
        Table("suggestion", Suggestion, "created_ms", _suggestion_insert, None, _suggestion_row),
        Table("decision", GateDecision, "time_ms", _decision_insert, None, _decision_row),
        Table("alarm", Alarm, "time_ms", _alarm_insert, None, _alarm_row),
        Table("checkpoint", TwinCheckpoint, "time_ms", _checkpoint_insert, None, _checkpoint_row),
    )
}

_BY_TYPE: dict[type, Table] = {t.record_type: t for t in TABLES.values()}


def table_for(record: object) -> Table:
    """The table that stores ``record``; TypeError for anything the store does not keep."""
    try:
        return _BY_TYPE[type(record)]
    except KeyError:
        raise TypeError(f"the store does not keep {type(record).__name__} records") from None
