"""The bus channels between workers, in one place: who publishes on each and who listens is in docs/architecture.md."""

from __future__ import annotations

ALERTS_CHANNEL = "tocsin:alerts"  # an alert was issued or ended: every worker's dispatcher reads it from the database
REPORTS_CHANNEL = "tocsin:reports"  # a report or a report status reached the operator feed (numbered in the database)
EXERCISES_CHANNEL = "tocsin:exercises"  # an exercise's clock changed or it ended
USERS_CHANNEL = "tocsin:users"  # an account's password, roles or active state changed: its tokens are void
