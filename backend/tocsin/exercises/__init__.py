"""Exercises: the scenario library (`scenarios/`), and, to come, the scenario clock, synthetic citizens and
after-action reports."""
