"""The suggestion engine: model-predictive insulin (and rescue-carb) suggestions on the twin's
ensemble, each with a plain-language reason, predicted trajectories and an expiry.

Public API: :class:`Suggester` (``suggest(ensemble, SuggestInputs(...)) -> Suggestion``),
:class:`SuggestInputs`, :class:`SuggesterConfig`. Suggestions are advice: the gateway passes
every one through :class:`edgetwin.safety.SafetyGate` before anything reaches the pump.
"""

from edgetwin.suggest.engine import Suggester, SuggesterConfig, SuggestInputs

__all__ = ["SuggestInputs", "Suggester", "SuggesterConfig"]
