"""Simulated heart-rate band (Heart Rate Service) and blood-glucose meter (Glucose Service)."""

from __future__ import annotations

from bumble import gatt
from bumble.core import UUID
from bumble.device import Connection

from devices.codecs.racp import Racp, RacpOpcode, RacpOperator, RacpProfile, RacpResponseCode
from devices.errors import DecodeError
from devices.sim.faults import Fault
from devices.sim.peripheral import SimPeripheral, char, value
from devices.sim.radio import VirtualRadio
from devices.sim.world import SimWorld

__all__ = ["SimHeartRateBand", "SimMeter"]

_P = gatt.Characteristic.Properties
_R = gatt.Characteristic.READABLE
_RW = gatt.Characteristic.READABLE | gatt.Characteristic.WRITEABLE


class SimHeartRateBand(SimPeripheral):
    """Notifies a Heart Rate Measurement every world minute (DROP_NOTIFICATIONS and DISCONNECT apply)."""

    KIND = "heart"
    SERVICE = 0x180D

    def services(self) -> list[gatt.Service]:
        self.measurement = char(UUID.from_16_bits(0x2A37), _P.NOTIFY, _R, b"")
        location = char(UUID.from_16_bits(0x2A38), _P.READ, _R, bytes([1]))  # chest
        return [gatt.Service(UUID.from_16_bits(self.SERVICE), [self.measurement, location])]

    def on_minute(self, minute: int) -> None:
        m = self.world.heart.measurement()
        if self.connection is not None and not self.world.faults.active(
            Fault.DROP_NOTIFICATIONS, minute, self.KIND
        ):
            self.spawn(self.notify(self.measurement, bytes(m)))


class SimMeter(SimPeripheral):
    """A meter whose stored measurements (``world.meter``) are fetched through RACP."""

    KIND = "meter"
    SERVICE = 0x1808

    def __init__(
        self, world: SimWorld, radio: VirtualRadio, *, name: str | None = None, address: str | None = None
    ) -> None:
        super().__init__(world, radio, name=name, address=address)

    def services(self) -> list[gatt.Service]:
        def u(x: int) -> UUID:
            return UUID.from_16_bits(x)

        self.measurement = char(u(0x2A18), _P.NOTIFY, _R, b"")
        self.racp = char(u(0x2A52), _P.WRITE | _P.INDICATE, _RW, value(write=self._write_racp))
        feature = char(u(0x2A51), _P.READ, _R, bytes(2))
        return [gatt.Service(u(self.SERVICE), [self.measurement, feature, self.racp])]

    def _write_racp(self, _: Connection, data: bytes) -> None:
        self.spawn(self._racp(data))

    async def _racp(self, data: bytes) -> None:
        try:
            req = Racp.from_bytes(data, profile=RacpProfile.GLUCOSE)
        except DecodeError:
            await self.indicate(
                self.racp, bytes(Racp.response(data[0] if data else 0, RacpResponseCode.INVALID_OPERAND))
            )
            return
        records = self.world.meter.records
        if req.operator is RacpOperator.GREATER_OR_EQUAL:
            records = [r for r in records if r.sequence >= req.operands[0]]
        elif req.operator is not RacpOperator.ALL:
            await self.indicate(
                self.racp, bytes(Racp.response(req.opcode, RacpResponseCode.OPERATOR_NOT_SUPPORTED))
            )
            return
        if req.opcode is RacpOpcode.REPORT_STORED_RECORDS:
            for r in records:
                await self.notify(self.measurement, bytes(r))
        code = RacpResponseCode.SUCCESS if records else RacpResponseCode.NO_RECORDS_FOUND
        await self.indicate(self.racp, bytes(Racp.response(req.opcode, code)))
