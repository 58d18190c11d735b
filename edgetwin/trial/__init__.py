"""Virtual trials: the twin controller (estimator + suggester + safety gate, closed loop) and the
basal-bolus reference on the virtual cohort, in parallel, with reports (``edgetwin trial``)."""
