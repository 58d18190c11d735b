"""Where the twin controller gets its ensemble from in a trial: an estimator.

:class:`Estimator` is the small interface the trial needs (the living twin's ``Twin`` class offers
the same calls): record delivered insulin and announced carbs, assimilate CGM, advance, and give
the current :class:`~edgetwin.twin.ensemble.TwinEnsemble`.

:class:`LivingTwinEstimator` is the product: the living twin (:class:`~edgetwin.twin.Twin`) as a
gateway runs it for a new patient. Its prior comes from the therapy profile and the virtual
population with the patient itself left out of the donors, every delivered unit is recorded
(``basal_mode="delivered"``), each CGM value is assimilated, and once a day the parameters are
re-identified from the data seen so far (:class:`~edgetwin.twin.history.NightlyPersonaliser`).

:class:`OracleEstimator` is **not** an estimator: it reads the virtual patient's true parameters
and state. It shows what the suggester and gate achieve with a perfect state estimate (an upper
bound) and gives tests a twin that is exactly right. It knows what is in the patient's gut at
this moment (it is part of the state) but, like any real twin, nothing about food the patient
will eat and has not announced. Trial reports always name the estimator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from edgetwin.model.kernels import AUX_PLANNED_G, EAT_RATE_G_PER_MIN
from edgetwin.therapy import TherapyProfile
from edgetwin.twin.ensemble import TwinEnsemble
from edgetwin.virtual.patient import VirtualPatient

if TYPE_CHECKING:
    from edgetwin.twin.twin import Twin

__all__ = ["Estimator", "LivingTwinEstimator", "OracleEstimator"]


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


class LivingTwinEstimator:
    """The living twin in a trial (see the module docstring); ``minutes``: the trial length."""

    name = "twin"

    def __init__(
        self,
        patient_name: str,
        profile: TherapyProfile,
        minutes: int,
        *,
        seed: int = 0,
        personalise: bool = True,
    ) -> None:
        from edgetwin.twin.history import History, NightlyPersonaliser
        from edgetwin.twin.prior import profile_prior

        self._prior = profile_prior(profile, exclude=(patient_name,))
        self._profile = profile
        self._seed = seed
        self.history = History(np.full(minutes + 1, np.nan), np.zeros(minutes + 1), np.zeros(minutes + 1))
        self._nightly = NightlyPersonaliser(self._prior, self.history) if personalise else None
        self._twin: Twin | None = None

    def _get(self, first_glucose_mg_dl: float | None = None) -> Twin:
        if self._twin is None:
            from edgetwin.twin.twin import BasalSchedule, Twin

            self._twin = Twin(
                self._prior,
                BasalSchedule.from_profile(self._profile),
                basal_mode="delivered",
                initial_glucose_mg_dl=first_glucose_mg_dl,
                seed=self._seed,
            )
        return self._twin

    def record_insulin(self, minute: int, units: float) -> object:
        if 0 <= minute < self.history.minutes:
            self.history.insulin_u[minute] += units
        return self._get().record_insulin(minute, units)

    def record_carbs(self, minute: int, grams: float) -> object:
        if 0 <= minute < self.history.minutes:
            self.history.cho_g[minute] += grams
        return self._get().record_carbs(minute, grams)

    def assimilate_cgm(self, minute: int, mg_dl: float) -> object:
        if 0 <= minute < self.history.minutes:
            self.history.cgm_mg_dl[minute] = mg_dl
        return self._get(mg_dl).assimilate_cgm(minute, mg_dl)

    def advance_to(self, minute: int) -> None:
        twin = self._get()
        twin.advance_to(minute)
        if self._nightly is not None:
            self._nightly(twin, minute)

    def ensemble(self) -> TwinEnsemble:
        return self._get().ensemble(for_dosing=True)


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
