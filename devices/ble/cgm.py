"""CGM over BLE (CGMS, 0x181F): ``async for reading in BleCgm(...).readings():``.

On every connection the driver reads CGM Feature (E2E-CRC on or off), subscribes to CGM
Measurement, the Specific Ops Control Point and RACP, reads CGM Status and the communication
interval, and anchors Time Offsets to wall-clock time: it reads Session Start Time and, when the
sensor has none (or a new session started), writes ``now − current offset`` (whole minutes).
Readings carry ``sequence`` = Time Offset and ``time_utc`` = session start + offset.

Gaps: an offset more than one interval past the highest seen is a hole; the driver asks RACP for
it at once (``within range``), and after every reconnect for everything past the highest offset
(``≥``); on the first connection it back-fills ``initial_backfill_min``. Readings recorded before
the connection began (older than the sensor's offset read then) or older than the highest offset
seen are marked ``backfilled``, so a gateway never takes them for the present; duplicates (same offset) are dropped. Records failing their E2E-CRC or
otherwise malformed are counted in ``stats`` and recovered by back-fill, never used.

Lost links are retried with exponential backoff on the injected clock; transport waits are real
seconds (``devices.timing``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from devices.ble.transport import BleakBackend, BleLink, Disconnected
from devices.codecs import uuids
from devices.codecs.cgms import (
    CgmControlPoint,
    CgmFeature,
    CgmOpcode,
    CgmStatusRecord,
    SessionStartTime,
    split_measurements,
)
from devices.codecs.cgms import CgmMeasurement as _Measurement
from devices.codecs.mapping import DEFAULT_WARMUP_MIN, cgm_reading
from devices.codecs.racp import Racp, RacpOpcode, RacpOperator, RacpResponseCode
from devices.errors import DecodeError, DevicesError, DeviceUnavailableError, ProtocolError
from devices.timing import Backoff
from edgetwin.clock import Clock, RealClock
from edgetwin.messages import CgmReading

__all__ = ["BleCgm", "CgmStats"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CgmStats:
    readings: int = 0
    backfilled: int = 0
    duplicates: int = 0
    crc_errors: int = 0
    decode_errors: int = 0
    gaps: int = 0
    backfill_requests: int = 0
    connections: int = 0
    sessions_anchored: int = 0


class BleCgm:
    """A CGMS sensor found by ``address`` or, without one, by its advertised service."""

    def __init__(
        self,
        address: str | None = None,
        *,
        backend: BleakBackend = BleakBackend(),
        clock: Clock | None = None,
        device_id: str | None = None,
        warmup_min: int = DEFAULT_WARMUP_MIN,
        initial_backfill_min: int = 24 * 60,
        io_timeout_s: float = 10.0,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.clock = clock or RealClock()
        self.link = BleLink(
            backend,
            self.clock,
            address=address,
            service_uuid=uuids.CGM_SERVICE,
            io_timeout_s=io_timeout_s,
            backoff=backoff,
        )
        self._device_id = device_id
        self.warmup_min = warmup_min
        self.initial_backfill_min = initial_backfill_min
        self.stats = CgmStats()
        self.e2e = False
        self.interval_min = 5
        self.session_start_utc: datetime | None = None
        self._seen: set[int] = set()
        self._max_offset: int | None = None
        self._live_from: int | None = None  # the sensor's offset "now" when this connection began
        self._racp: deque[Racp] = deque()
        self._racp_busy = False
        self._stash: deque[tuple[str, bytes]] = deque()

    @property
    def device_id(self) -> str:
        return self._device_id or f"ble:{self.link.address or 'cgm'}"

    async def readings(self) -> AsyncIterator[CgmReading]:
        """Readings as they arrive, back-filled ones included, across reconnects, forever."""
        while True:
            try:
                async with self.link.connected():
                    self.stats.connections += 1
                    async for reading in self._connected():
                        yield reading
            except (DeviceUnavailableError, ProtocolError) as exc:
                log.warning("%s: %s", self.device_id, exc)
            except DecodeError as exc:
                log.warning("%s: bad record during set-up: %s", self.device_id, exc)
            await self.link.wait_before_retry()

    # --- one connection -------------------------------------------------------------------

    async def _connected(self) -> AsyncIterator[CgmReading]:
        link = self.link
        self._stash.clear()
        self._racp.clear()
        self._racp_busy = False
        feature = CgmFeature.from_bytes(await link.read(uuids.CGM_FEATURE))
        self.e2e = feature.e2e
        for uuid in (
            uuids.CGM_MEASUREMENT,
            uuids.CGM_SPECIFIC_OPS_CONTROL_POINT,
            uuids.RECORD_ACCESS_CONTROL_POINT,
        ):
            await link.subscribe(uuid)
        interval = await self._control(CgmControlPoint(CgmOpcode.GET_COMMUNICATION_INTERVAL, e2e=self.e2e))
        if interval.opcode is CgmOpcode.COMMUNICATION_INTERVAL_RESPONSE and interval.value:
            self.interval_min = int(interval.value)
        before = self.clock.now_utc()
        status = CgmStatusRecord.from_bytes(await link.read(uuids.CGM_STATUS), require_crc=self.e2e)
        read_at = before + (self.clock.now_utc() - before) / 2  # the offset is "now" within one round trip
        await self._anchor(status.time_offset_min, read_at)
        # Records the sensor stored before this connection (older than its "now") are catch-up,
        # however they arrive: in order through RACP they would otherwise look live.
        self._live_from = status.time_offset_min
        if self._max_offset is None:
            first = max(0, status.time_offset_min - self.initial_backfill_min)
            self._request(RacpOperator.GREATER_OR_EQUAL, first)
        else:
            self._request(RacpOperator.GREATER_OR_EQUAL, self._max_offset + 1)
        while True:
            await self._pump_racp()
            if self._stash:
                event: tuple[str, bytes] | Disconnected = self._stash.popleft()
            else:
                event = await link.next_event(link.io_timeout_s if self._racp_busy else None)
            if isinstance(event, Disconnected):
                log.info("%s: link lost", self.device_id)
                return
            uuid, data = event
            if uuid == uuids.CGM_MEASUREMENT:
                await self._check_new_session(data)
                for reading in self._measurements(data):
                    yield reading
            elif uuid == uuids.RECORD_ACCESS_CONTROL_POINT:
                self._racp_done(data)

    async def _control(self, request: CgmControlPoint) -> CgmControlPoint:
        await self.link.write(uuids.CGM_SPECIFIC_OPS_CONTROL_POINT, bytes(request))
        while True:
            event = await self.link.next_event(self.link.io_timeout_s)
            if isinstance(event, Disconnected):
                raise DeviceUnavailableError("link lost during a control-point procedure")
            if event[0] == uuids.CGM_SPECIFIC_OPS_CONTROL_POINT:
                return CgmControlPoint.from_bytes(event[1], require_crc=self.e2e)
            self._stash.append(event)

    async def _check_new_session(self, data: bytes) -> None:
        """A live offset far below the highest seen (with no back-fill running) may mean a new
        sensor session: CGM Status tells, and a new session is re-anchored before its records."""
        if self._racp_busy or self._max_offset is None:
            return
        try:
            lowest = min(rec[4] | rec[5] << 8 for rec in split_measurements(data))
        except DecodeError:
            return
        if lowest >= self._max_offset - 2 * self.interval_min:
            return
        before = self.clock.now_utc()
        status = CgmStatusRecord.from_bytes(await self.link.read(uuids.CGM_STATUS), require_crc=self.e2e)
        if status.time_offset_min < self._max_offset:
            read_at = before + (self.clock.now_utc() - before) / 2
            await self._anchor(status.time_offset_min, read_at)

    async def _anchor(self, offset_now: int, read_at: datetime) -> None:
        """Make sure session start + offset is wall-clock time; detect a new session."""
        start = SessionStartTime.from_bytes(
            await self.link.read(uuids.CGM_SESSION_START_TIME), require_crc=self.e2e
        )
        new_session = self._max_offset is not None and offset_now < self._max_offset
        if start.local_time is None or new_session:
            anchor = read_at.replace(second=0, microsecond=0) - timedelta(minutes=offset_now)
            await self.link.write(
                uuids.CGM_SESSION_START_TIME, bytes(SessionStartTime.from_utc(anchor, e2e=self.e2e))
            )
            self.stats.sessions_anchored += 1
            start_utc = anchor
        else:
            start_utc = start.to_utc()
        if self.session_start_utc is not None and start_utc != self.session_start_utc:
            log.info("%s: new sensor session started at %s", self.device_id, start_utc.isoformat())
            self._seen.clear()
            self._max_offset = None
            self._live_from = None
        self.session_start_utc = start_utc

    def _measurements(self, data: bytes) -> list[CgmReading]:
        out: list[CgmReading] = []
        try:
            chunks = split_measurements(data)
        except DecodeError as exc:
            self.stats.decode_errors += 1
            log.warning("%s: dropped a malformed notification: %s", self.device_id, exc)
            return out
        for chunk in chunks:
            try:
                m = _Measurement.from_bytes(chunk, require_crc=self.e2e)
            except DecodeError as exc:
                if exc.field == "crc":
                    self.stats.crc_errors += 1
                else:
                    self.stats.decode_errors += 1
                log.warning("%s: rejected a record (%s); back-fill will fetch it again", self.device_id, exc)
                continue
            reading = self._accept(m)
            if reading is not None:
                out.append(reading)
        return out

    def _accept(self, m: _Measurement) -> CgmReading | None:
        offset = m.time_offset_min
        if offset in self._seen:
            self.stats.duplicates += 1
            return None
        assert self.session_start_utc is not None
        top = self._max_offset
        backfilled = (top is not None and offset < top) or (
            self._live_from is not None and offset < self._live_from
        )
        if top is not None and offset > top + self.interval_min:
            self.stats.gaps += 1
            self._request(RacpOperator.WITHIN_RANGE, top + 1, offset - 1)
        if top is None or offset > top:
            self._max_offset = offset
        self._seen.add(offset)
        try:
            reading = cgm_reading(
                m, self.session_start_utc, self.device_id, backfilled=backfilled, warmup_min=self.warmup_min
            )
        except (ValueError, DevicesError) as exc:
            self.stats.decode_errors += 1
            log.warning("%s: record at offset %d not usable: %s", self.device_id, offset, exc)
            return None
        self.stats.readings += 1
        self.stats.backfilled += backfilled
        return reading

    # --- RACP back-fill (one procedure at a time, records arrive as measurements) -----------

    def _request(self, operator: RacpOperator, *operands: int) -> None:
        self._racp.append(Racp.report(operator, *operands))

    async def _pump_racp(self) -> None:
        if self._racp_busy or not self._racp:
            return
        request = self._racp.popleft()
        self.stats.backfill_requests += 1
        await self.link.write(uuids.RECORD_ACCESS_CONTROL_POINT, bytes(request))
        self._racp_busy = True

    def _racp_done(self, data: bytes) -> None:
        self._racp_busy = False
        try:
            resp = Racp.from_bytes(data)
        except DecodeError as exc:
            log.warning("%s: bad RACP response: %s", self.device_id, exc)
            return
        if resp.opcode is RacpOpcode.RESPONSE_CODE and resp.response_code not in (
            RacpResponseCode.SUCCESS,
            RacpResponseCode.NO_RECORDS_FOUND,
        ):
            log.warning("%s: back-fill refused (RACP code %s)", self.device_id, resp.response_code)
