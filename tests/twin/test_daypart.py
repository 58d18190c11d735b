"""Insulin sensitivity by time of day: found where the data show it, wide where they do not."""

from __future__ import annotations

import numpy as np
import pytest

from edgetwin.bench.estimate import _history, _profile, _simulate
from edgetwin.errors import InputDataError
from edgetwin.model import load_patient
from edgetwin.model.ensemble import new_aux, run_ensemble
from edgetwin.model.params import P_VG, X_GS
from edgetwin.twin.daypart import identify_dayparts, params_by_part, part_segments, simulate_by_part
from edgetwin.twin.identify import identify
from edgetwin.twin.indices import steady_states
from edgetwin.twin.prior import N_THETA, Donors, profile_prior


def test_segments_tile_the_history_at_local_part_boundaries() -> None:
    # minute 0 is 05:00 local: one hour of night, then whole 6-h parts
    assert part_segments(300, 0, 800) == [(0, 60, 0), (60, 420, 1), (420, 780, 2), (780, 800, 3)]
    assert part_segments(0, 1430, 1450) == [(1430, 1440, 3), (1440, 1450, 0)]
    with pytest.raises(InputDataError):
        part_segments(1440, 0, 10)


def test_equal_parts_simulate_as_one_run() -> None:
    pp = load_patient("adult#002")
    donors = Donors.from_vectors((pp.name,), pp.vector()[None, :])
    by_part = params_by_part(donors, 0, np.zeros(N_THETA), np.zeros((1, 4)))
    cho = np.zeros(1000)
    cho[100], cho[500] = 60.0, 40.0
    ins = np.full(1000, pp.basal_u_per_h / 60.0)
    ins[100] += 6.0
    g = simulate_by_part(by_part, part_segments(200, 0, 1000), cho, ins, 140.0)
    p = by_part[0]
    x, _ = steady_states(p)
    scale = 140.0 / (x[0, X_GS] / p[0, P_VG])
    x[:, [3, 4, 12]] *= scale
    one = run_ensemble(p, np.ascontiguousarray(x), new_aux(1), cho, ins, stride=1).gsub_mg_dl
    assert np.max(np.abs(g - one)) < 0.05


def _dayparts(pattern: tuple[float, ...] | None, days: int):  # type: ignore[no-untyped-def]
    pp, th, trace = _simulate("adult#001", days, 3, pattern)
    history = _history(trace)
    res = identify(profile_prior(_profile(pp, th)), history)
    return identify_dayparts(res, history, 0)


def test_a_morning_resistance_shows_as_the_lowest_part() -> None:
    dp = _dayparts((1.0, 0.55, 1.0, 1.0), 14)
    assert dp.parts[1].multiplier == min(p.multiplier for p in dp.parts), dp.format()
    assert dp.parts[1].p90 < 1.0, dp.format()
    assert "morning" in dp.format() and len(dp.to_dict()["parts"]) == 4  # type: ignore[arg-type]


def test_one_day_is_too_little_to_claim_a_pattern() -> None:
    short = _dayparts((1.0, 0.55, 1.0, 1.0), 1)
    assert not any(p.identified for p in short.parts)
    assert all(p.note == "too few readings" for p in short.parts), short.format()
    assert np.all(short.log_multipliers() == 0.0)
