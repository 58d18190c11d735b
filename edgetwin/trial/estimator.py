"""Where the twin controller gets its ensemble from in a trial: an estimator.

:class:`Estimator` is the small interface the trial needs (the living twin's ``Twin`` class offers
the same calls): record delivered insulin and announced carbs, assimilate CGM, advance, and give
the current :class:`~edgetwin.twin.ensemble.TwinEnsemble`.

:class:`OracleEstimator` is **not** an estimator: it reads the virtual patient's true parameters
and state. It shows what the suggester and gate achieve with a perfect state estimate (an upper
bound) and gives tests a twin that is exactly right. It knows what is in the patient's gut at
this moment (it is part of the state) but, like any real twin, nothing about food the patient
will eat and has not announced. Trial reports always name the estimator.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from edgetwin.model.kernels import AUX_PLANNED_G, EAT_RATE_G_PER_MIN
from edgetwin.twin.ensemble import TwinEnsemble
from edgetwin.virtual.patient import VirtualPatient

__all__ = ["Estimator", "OracleEstimator"]


@runtime_checkable
class Estimator(Protocol):
    """What a trial (or the gateway) needs from a state estimator. Minutes count from the start;
    return values of the record/assimilate calls (a status, say) are ignored."""

    def record_insulin(self, minute: int, units: float) -> object:
        """Insulin delivered during ``minute`` (U)."""
        ...

    def record_carbs(self, minute: int, grams: float) -> object:
        """Carbohydrate announced (or eaten as a rescue) at ``minute`` (g)."""
        ...

    def assimilate_cgm(self, minute: int, mg_dl: float) -> object:
        """A CGM value (mg/dL) taken at ``minute``."""
        ...

    def advance_to(self, minute: int) -> None:
        """Bring the estimate up to ``minute`` (inputs up to it are recorded)."""
        ...

    def ensemble(self) -> TwinEnsemble:
        """The current weighted ensemble (a copy the caller may keep)."""
        ...


class OracleEstimator:
    """The virtual patient's true state as a one-member ensemble (upper bound; see module doc)."""

    name = "oracle"

    def __init__(self, patient: VirtualPatient) -> None:
        self._patient = patient
        self._announced: list[tuple[int, float]] = []

    def record_insulin(self, minute: int, units: float) -> None:
        """Ignored: the oracle reads the insulin already in the patient's state."""

    def record_carbs(self, minute: int, grams: float) -> None:
        self._announced.append((minute, grams))

    def assimilate_cgm(self, minute: int, mg_dl: float) -> None:
        """Ignored: the oracle does not need measurements."""

    def advance_to(self, minute: int) -> None:
        """Nothing to do: the patient is the state."""

    def ensemble(self) -> TwinEnsemble:
        p = self._patient
        snap = p.snapshot()
        x = np.array(snap["x"], dtype=np.float64)[None, :]
        aux = np.array(snap["aux"], dtype=np.float64)[None, :]
        now = p.minute
        # Food still to be eaten: only what was announced (never the unannounced truth).
        pending = 0.0
        for minute, grams in self._announced:
            if minute <= now:
                pending += max(0.0, grams - EAT_RATE_G_PER_MIN * (now - minute))
        aux[0, AUX_PLANNED_G] = pending
        self._announced = [(m, g) for m, g in self._announced if g - EAT_RATE_G_PER_MIN * (now - m) > 0]
        return TwinEnsemble(now, p.params.vector()[None, :], x, aux)
