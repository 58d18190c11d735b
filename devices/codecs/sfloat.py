"""IEEE 11073 16-bit SFLOAT: ``raw = (exponent & 0xF) << 12 | (mantissa & 0xFFF)``.

value = mantissa × 10^exponent, exponent a signed 4-bit and mantissa a signed 12-bit number.
Reserved raw values (exponent 0): ``0x07FF`` NaN, ``0x0800`` NRes (not at this resolution),
``0x07FE`` +INF, ``0x0802`` −INF, ``0x0801`` reserved. Decoding maps NaN, NRes and reserved to
``math.nan`` and the infinities to ``±math.inf``; callers decide what a non-finite value means.
Encodings are not unique: compare values, not bytes.
"""

from __future__ import annotations

import math

from devices.errors import EncodeError

__all__ = ["SFLOAT_INF", "SFLOAT_NAN", "SFLOAT_NEG_INF", "SFLOAT_NRES", "decode_sfloat", "encode_sfloat"]

SFLOAT_NAN = 0x07FF
SFLOAT_NRES = 0x0800
SFLOAT_INF = 0x07FE
SFLOAT_NEG_INF = 0x0802
_RESERVED = 0x0801
_MANTISSA_MAX = 2045


def decode_sfloat(raw: int) -> float:
    """The value of a raw 16-bit SFLOAT."""
    raw &= 0xFFFF
    if raw in (SFLOAT_NAN, SFLOAT_NRES, _RESERVED):
        return math.nan
    if raw == SFLOAT_INF:
        return math.inf
    if raw == SFLOAT_NEG_INF:
        return -math.inf
    exponent = raw >> 12
    mantissa = raw & 0x0FFF
    if exponent >= 8:
        exponent -= 16
    if mantissa >= 0x0800:
        mantissa -= 0x1000
    # Round away binary noise: an SFLOAT has at most 4 significant digits.
    return round(mantissa * 10.0**exponent, max(0, -exponent))


def encode_sfloat(value: float) -> int:
    """The shortest exact SFLOAT for ``value`` (else the most precise one that fits).

    NaN encodes as NaN, infinities as ±INF. Raises EncodeError when ``|value|`` is too large
    (> 2045e7) to represent.
    """
    if math.isnan(value):
        return SFLOAT_NAN
    if math.isinf(value):
        return SFLOAT_INF if value > 0 else SFLOAT_NEG_INF
    best: tuple[int, int] | None = None
    exact: tuple[int, int] | None = None
    for exponent in range(-8, 8):
        mantissa = round(value / 10.0**exponent)
        if abs(mantissa) > _MANTISSA_MAX:
            continue
        if best is None:
            best = (exponent, mantissa)  # smallest exponent that fits: the most precise
        if math.isclose(mantissa * 10.0**exponent, value, rel_tol=1e-9, abs_tol=1e-12):
            exact = (exponent, mantissa)  # keeps the largest exact exponent: the shortest
    chosen = exact or best
    if chosen is None:
        raise EncodeError(f"{value!r} is too large for an SFLOAT (max ±2045e7)")
    exponent, mantissa = chosen
    return ((exponent & 0xF) << 12) | (mantissa & 0x0FFF)
