"""Benchmarks behind ``edgetwin bench NAME``. Each compares against a baseline measured in the
same process and returns its figures as a dict (printed as the last line, JSON)."""
