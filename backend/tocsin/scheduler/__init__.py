"""Scheduled work: issuing alerts at their time and expiring them at `expires`.

Exactly one scheduler runs: inside `tocsin serve` in embedded mode, or as the `tocsin scheduler` process in
production, where it also holds a PostgreSQL advisory lock so a second one waits as a standby instead of running.
Jobs keep no state of their own: what is due is recomputed from our tables every run, so a restart loses nothing.
"""
