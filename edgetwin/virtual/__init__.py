"""The simulated world around a twin: virtual patients, CGM sensors, pumps, meal scenarios,
the reference basal-bolus controller and the closed-loop environment that joins them.

Used by ``edgetwin simulate``, virtual trials, simulated devices and HIL benches. Nothing here
talks to real hardware.
"""
