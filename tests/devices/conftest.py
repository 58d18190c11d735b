from __future__ import annotations

from datetime import UTC, datetime

T0 = datetime(2026, 3, 2, tzinfo=UTC)
FAST = 14400.0  # a day in six real seconds
