"""Identification functions for the job tests (module-level so a process pool can pickle them)."""

from __future__ import annotations

from collections.abc import Mapping

from edgetwin.model.cohort import load_patient
from edgetwin.model.params import PARAM_NAMES
from sync.cloud.jobs import IdentificationInput


def scale_sensitivity(inp: IdentificationInput) -> Mapping[str, float]:
    """A deliberately simple identification: adult#001 with insulin action scaled by how far the
    mean glucose sits from 120 mg/dL (bounded). Real batch identification comes from the twin."""
    pp = load_patient("adult#001")
    values = [g for _, g in inp.cgm if g is not None]
    mean = sum(values) / len(values)
    ratio = min(1.5, max(0.67, mean / 120.0))
    params = {n: float(getattr(pp, n)) for n in PARAM_NAMES}
    params["Vmx"] = params["Vmx"] * ratio
    return params


def nonsense(inp: IdentificationInput) -> Mapping[str, float]:
    params = dict(scale_sensitivity(inp))
    params["BW"] = 900.0  # not a human
    return params


def crashes(inp: IdentificationInput) -> Mapping[str, float]:
    raise RuntimeError("identification diverged")
