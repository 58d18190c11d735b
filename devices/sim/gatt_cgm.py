"""A simulated CGM as a CGMS (0x181F) GATT peripheral over the world's ``SimCgmSensor``.

It notifies each new sample (several records per notification when it catches up, as many as the
ATT MTU holds), keeps every record of the session for RACP back-fill, answers CGM Status, Session
Start/Run Time and the Specific Ops Control Point, and protects records with E2E-CRC when ``e2e``
(the default). Faults (``devices.sim.faults``): DROP_NOTIFICATIONS and BAD_CRC spoil live
notifications only (stored records stay intact, so back-fill recovers them); DISCONNECT takes it off
the air; SENSOR_WARMUP, SENSOR_ERROR and COMPRESSION_LOW come from the sensor model.
"""

from __future__ import annotations

from bumble import gatt
from bumble.core import UUID
from bumble.device import Connection

from devices.codecs.cgms import (
    CgmControlPoint,
    CgmFeature,
    CgmFeatureBits,
    CgmMeasurement,
    CgmOpcode,
    CgmResponseCode,
    SessionRunTime,
    SessionStartTime,
)
from devices.codecs.racp import Racp, RacpOpcode, RacpOperator, RacpResponseCode
from devices.errors import CrcError, DecodeError
from devices.sim.cgm_sensor import SensorRecord
from devices.sim.faults import Fault
from devices.sim.peripheral import ATT_INVALID_CRC, ATT_MISSING_CRC, SimPeripheral, char, value
from devices.sim.radio import VirtualRadio
from devices.sim.world import SimWorld

__all__ = ["SimCgm"]

_P = gatt.Characteristic.Properties
_RW = gatt.Characteristic.READABLE | gatt.Characteristic.WRITEABLE

FEATURES = (
    CgmFeatureBits.SENSOR_MALFUNCTION_DETECTION
    | CgmFeatureBits.RESULT_HIGH_LOW_DETECTION
    | CgmFeatureBits.DEVICE_SPECIFIC_ALERT
    | CgmFeatureBits.TREND
)

_ALERT_GET = {op: CgmOpcode(op + 1) for op in range(8, 24, 3)}  # get → response


class SimCgm(SimPeripheral):
    KIND = "cgm"
    SERVICE = 0x181F

    def __init__(
        self,
        world: SimWorld,
        radio: VirtualRadio,
        *,
        e2e: bool = True,
        name: str | None = None,
        address: str | None = None,
    ) -> None:
        super().__init__(world, radio, name=name, address=address)
        self.sensor = world.cgm
        self.e2e = e2e
        self.live_sent = 0
        self.alert_levels: dict[int, float] = {}
        self._pending: list[SensorRecord] = []
        self._sending = False
        self.sensor.subscribe(self._on_record)

    def services(self) -> list[gatt.Service]:
        def u(x: int) -> UUID:
            return UUID.from_16_bits(x)

        self.measurement = char(u(0x2AA7), _P.NOTIFY, gatt.Characteristic.READABLE, b"")
        self.cp = char(u(0x2AAC), _P.WRITE | _P.INDICATE, _RW, value(write=self._write_cp))
        self.racp = char(u(0x2A52), _P.WRITE | _P.INDICATE, _RW, value(write=self._write_racp))
        chars = [
            self.measurement,
            char(u(0x2AA8), _P.READ, gatt.Characteristic.READABLE, value(read=self._read_feature)),
            char(
                u(0x2AA9),
                _P.READ,
                gatt.Characteristic.READABLE,
                value(read=lambda c: bytes(self.sensor.status(e2e=self.e2e))),
            ),
            char(
                u(0x2AAA),
                _P.READ | _P.WRITE,
                _RW,
                value(read=self._read_start_time, write=self._write_start_time),
            ),
            char(
                u(0x2AAB),
                _P.READ,
                gatt.Characteristic.READABLE,
                value(read=lambda c: bytes(SessionRunTime(self.sensor.run_time_hours, self.e2e))),
            ),
            self.cp,
            self.racp,
        ]
        return [gatt.Service(u(self.SERVICE), chars)]

    # --- reads and writes -------------------------------------------------------------------

    def _read_feature(self, _: Connection) -> bytes:
        features = FEATURES | (CgmFeatureBits.E2E_CRC if self.e2e else CgmFeatureBits(0))
        return bytes(CgmFeature(features))

    def _read_start_time(self, _: Connection) -> bytes:
        s = self.sensor.session_start_time
        return bytes(SessionStartTime(s.local_time, s.time_zone_quarter_hours, s.dst_code, self.e2e))

    def _write_start_time(self, _: Connection, data: bytes) -> None:
        self.sensor.session_start_time = self._parse(SessionStartTime.from_bytes, data)

    def _parse(self, decoder, data: bytes):
        try:
            return decoder(data, require_crc=self.e2e)
        except CrcError as exc:
            raise self.att_error(ATT_MISSING_CRC if exc.actual is None else ATT_INVALID_CRC) from None
        except DecodeError:
            raise self.att_error(0x0D) from None  # invalid attribute value length

    def _write_cp(self, _: Connection, data: bytes) -> None:
        try:
            request = CgmControlPoint.from_bytes(data, require_crc=self.e2e)
        except CrcError as exc:
            raise self.att_error(ATT_MISSING_CRC if exc.actual is None else ATT_INVALID_CRC) from None
        except DecodeError:
            op = data[0] if data else 0
            self.spawn(
                self.indicate(
                    self.cp,
                    bytes(CgmControlPoint.response(op, CgmResponseCode.OP_CODE_NOT_SUPPORTED, e2e=self.e2e)),
                )
            )
            return
        self.spawn(self.indicate(self.cp, bytes(self._control(request))))

    def _control(self, req: CgmControlPoint) -> CgmControlPoint:
        op = req.opcode
        ok = CgmControlPoint.response(op, CgmResponseCode.SUCCESS, e2e=self.e2e)
        if op is CgmOpcode.GET_COMMUNICATION_INTERVAL:
            return CgmControlPoint(
                CgmOpcode.COMMUNICATION_INTERVAL_RESPONSE, self.sensor.sample_time_min, e2e=self.e2e
            )
        if op is CgmOpcode.SET_COMMUNICATION_INTERVAL:
            return ok
        if op is CgmOpcode.START_SESSION:
            self.sensor.start_session()
            return ok
        if op in (CgmOpcode.STOP_SESSION, CgmOpcode.RESET_DEVICE_SPECIFIC_ALERT):
            return ok
        if 7 <= op <= 24 and (op - 7) % 3 == 0 and req.value is not None:
            if not 20 <= req.value <= 400:
                return CgmControlPoint.response(op, CgmResponseCode.PARAMETER_OUT_OF_RANGE, e2e=self.e2e)
            self.alert_levels[op] = req.value
            return ok
        if op in _ALERT_GET:
            return CgmControlPoint(_ALERT_GET[op], self.alert_levels.get(op - 1, 0.0), e2e=self.e2e)
        return CgmControlPoint.response(op, CgmResponseCode.OP_CODE_NOT_SUPPORTED, e2e=self.e2e)

    # --- RACP ------------------------------------------------------------------------------

    def _write_racp(self, _: Connection, data: bytes) -> None:
        self.spawn(self._racp(data))

    async def _racp(self, data: bytes) -> None:
        try:
            req = Racp.from_bytes(data)
        except DecodeError as exc:
            code = (
                RacpResponseCode.OP_CODE_NOT_SUPPORTED
                if exc.field == "opcode"
                else RacpResponseCode.INVALID_OPERAND
            )
            await self.indicate(self.racp, bytes(Racp.response(data[0] if data else 0, code)))
            return
        records = self._select(req)
        if req.opcode is RacpOpcode.REPORT_NUMBER_OF_RECORDS:
            await self.indicate(
                self.racp, bytes(Racp(RacpOpcode.NUMBER_OF_RECORDS_RESPONSE, number_of_records=len(records)))
            )
            return
        if req.opcode is RacpOpcode.REPORT_STORED_RECORDS:
            await self._send_records(records, live=False)
        elif req.opcode is RacpOpcode.DELETE_STORED_RECORDS:
            gone = {r.offset_min for r in records}
            self.sensor.records = [r for r in self.sensor.records if r.offset_min not in gone]
        code = RacpResponseCode.SUCCESS
        if req.opcode in (RacpOpcode.REPORT_STORED_RECORDS, RacpOpcode.DELETE_STORED_RECORDS) and not records:
            code = RacpResponseCode.NO_RECORDS_FOUND
        await self.indicate(self.racp, bytes(Racp.response(req.opcode, code)))

    def _select(self, req: Racp) -> list[SensorRecord]:
        recs = self.sensor.records
        o = req.operands
        match req.operator:
            case RacpOperator.ALL:
                return list(recs)
            case RacpOperator.GREATER_OR_EQUAL:
                return [r for r in recs if r.offset_min >= o[0]]
            case RacpOperator.LESS_OR_EQUAL:
                return [r for r in recs if r.offset_min <= o[0]]
            case RacpOperator.WITHIN_RANGE:
                return [r for r in recs if o[0] <= r.offset_min <= o[1]]
            case RacpOperator.FIRST:
                return recs[:1]
            case RacpOperator.LAST:
                return recs[-1:]
        return []

    # --- live notifications -----------------------------------------------------------------

    def _measurement(self, r: SensorRecord) -> CgmMeasurement:
        return CgmMeasurement(
            r.glucose_mg_dl, r.offset_min, r.annunciation, r.trend_mg_dl_per_min, None, self.e2e
        )

    def _on_record(self, record: SensorRecord) -> None:
        if self.connection is None:
            return
        self._pending.append(record)
        if not self._sending:
            self._sending = True
            self.spawn(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._send_records(batch, live=True)
        finally:
            self._sending = False

    async def _send_records(self, records: list[SensorRecord], *, live: bool) -> None:
        chunk = b""
        for r in records:
            data = bytes(self._measurement(r))
            if live:
                faults = self.world.faults
                if faults.active(Fault.DROP_NOTIFICATIONS, r.world_minute, self.KIND):
                    continue
                if faults.active(Fault.BAD_CRC, r.world_minute, self.KIND) and self.e2e:
                    data = data[:-1] + bytes([data[-1] ^ 0x5A])
                self.live_sent += 1
            if len(chunk) + len(data) > self.att_payload:
                await self.notify(self.measurement, chunk)
                chunk = b""
            chunk += data
        if chunk:
            await self.notify(self.measurement, chunk)
