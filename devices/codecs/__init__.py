"""Pure codecs of the Bluetooth LE health profiles (and our IDS-modelled pump profile).

Bytes in, frozen dataclasses out (``from_bytes``) and back (``bytes(record)``); no I/O. Every
malformed input raises a ``devices.errors.DecodeError`` (``CrcError`` for a bad E2E-CRC) naming
the record, field and offset. One module per profile: ``cgms``, ``racp``, ``glucose``,
``heart_rate``, ``ids``; shared pieces in ``sfloat``, ``crc``, ``uuids``; ``mapping`` turns
decoded records into the core messages of ``edgetwin.messages``.
"""
