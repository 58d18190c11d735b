"""Heart-rate band (Heart Rate Service) and blood-glucose meter (Glucose Service, records via RACP)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import tzinfo

from devices.ble.transport import BleakBackend, BleLink, Disconnected
from devices.codecs import uuids
from devices.codecs.glucose import GlucoseMeasurement
from devices.codecs.heart_rate import HeartRateMeasurement
from devices.codecs.mapping import heart_rate_reading, meter_reading
from devices.codecs.racp import Racp, RacpOperator, RacpProfile, RacpResponseCode
from devices.errors import DecodeError, DeviceUnavailableError, ProtocolError
from devices.timing import Backoff
from edgetwin.clock import Clock, RealClock
from edgetwin.messages import HeartRateReading, MeterReading
from edgetwin.timeutil import UTC

__all__ = ["BleHeartRate", "BleMeter"]

log = logging.getLogger(__name__)


class BleHeartRate:
    """``async for r in BleHeartRate(...).readings():`` — each notification, stamped on arrival."""

    def __init__(
        self,
        address: str | None = None,
        *,
        backend: BleakBackend = BleakBackend(),
        clock: Clock | None = None,
        device_id: str | None = None,
        io_timeout_s: float = 10.0,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.clock = clock or RealClock()
        self.link = BleLink(
            backend,
            self.clock,
            address=address,
            service_uuid=uuids.HEART_RATE_SERVICE,
            io_timeout_s=io_timeout_s,
            backoff=backoff,
        )
        self._device_id = device_id
        self.rejected = 0

    @property
    def device_id(self) -> str:
        return self._device_id or f"ble:{self.link.address or 'heart-rate'}"

    async def readings(self) -> AsyncIterator[HeartRateReading]:
        while True:
            try:
                async with self.link.connected():
                    await self.link.subscribe(uuids.HEART_RATE_MEASUREMENT)
                    while not isinstance(event := await self.link.next_event(), Disconnected):
                        try:
                            m = HeartRateMeasurement.from_bytes(event[1])
                            yield heart_rate_reading(m, self.clock.now_utc(), self.device_id)
                        except DecodeError as exc:
                            self.rejected += 1
                            log.warning("%s: rejected: %s", self.device_id, exc)
            except (DeviceUnavailableError, ProtocolError) as exc:
                log.warning("%s: %s", self.device_id, exc)
            await self.link.wait_before_retry()


class BleMeter:
    """A glucose meter polled every ``poll_interval_s`` clock seconds for records newer than the
    last one seen (RACP ``≥ sequence``). The meter's clock is read in ``device_tz``."""

    def __init__(
        self,
        address: str | None = None,
        *,
        backend: BleakBackend = BleakBackend(),
        clock: Clock | None = None,
        device_id: str | None = None,
        device_tz: tzinfo = UTC,
        poll_interval_s: float = 900.0,
        io_timeout_s: float = 10.0,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.clock = clock or RealClock()
        self.link = BleLink(
            backend,
            self.clock,
            address=address,
            service_uuid=uuids.GLUCOSE_SERVICE,
            io_timeout_s=io_timeout_s,
            backoff=backoff,
        )
        self._device_id = device_id
        self.device_tz = device_tz
        self.poll_interval_s = poll_interval_s
        self.last_sequence = 0
        self.rejected = 0

    @property
    def device_id(self) -> str:
        return self._device_id or f"ble:{self.link.address or 'meter'}"

    async def fetch(self) -> list[MeterReading]:
        """Connect, read every record after ``last_sequence``, disconnect."""
        out: list[MeterReading] = []
        async with self.link.connected():
            await self.link.subscribe(uuids.GLUCOSE_MEASUREMENT)
            await self.link.subscribe(uuids.RECORD_ACCESS_CONTROL_POINT)
            request = Racp.report(
                RacpOperator.GREATER_OR_EQUAL, self.last_sequence + 1, profile=RacpProfile.GLUCOSE
            )
            await self.link.write(uuids.RECORD_ACCESS_CONTROL_POINT, bytes(request))
            while True:
                event = await self.link.next_event(self.link.io_timeout_s)
                if isinstance(event, Disconnected):
                    raise DeviceUnavailableError("meter link lost during record transfer")
                uuid, data = event
                if uuid == uuids.RECORD_ACCESS_CONTROL_POINT:
                    resp = Racp.from_bytes(data, profile=RacpProfile.GLUCOSE)
                    if resp.response_code not in (
                        RacpResponseCode.SUCCESS,
                        RacpResponseCode.NO_RECORDS_FOUND,
                    ):
                        raise ProtocolError("meter records", f"RACP answered {resp.response_code}")
                    return out
                try:
                    m = GlucoseMeasurement.from_bytes(data)
                    reading = meter_reading(m, self.device_id, device_tz=self.device_tz)
                except DecodeError as exc:
                    self.rejected += 1
                    log.warning("%s: rejected: %s", self.device_id, exc)
                    continue
                self.last_sequence = max(self.last_sequence, m.sequence)
                if reading is not None:
                    out.append(reading)

    async def readings(self) -> AsyncIterator[MeterReading]:
        while True:
            try:
                for reading in await self.fetch():
                    yield reading
            except (DeviceUnavailableError, ProtocolError) as exc:
                log.warning("%s: %s", self.device_id, exc)
            await self.clock.sleep(self.poll_interval_s)
