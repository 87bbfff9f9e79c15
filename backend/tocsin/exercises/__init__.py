"""Exercises: the scenario library (`scenarios/`), exercises run from it on the real platform (scenario clock,
injects, scripted actions, contingencies, synthetic citizens), their evaluation and after-action reports.

The domain is this package's own modules: scenario.py (the scenario format), schemas.py (the API's shapes),
service.py (library, create, the clock), timeline.py, evaluators.py (observations, ratings, improvement plan),
evaluation.py (were the expected actions done?) and router.py. Above it, and never imported by its services:
simulation/ (the live exercise in the scheduler process and its synthetic citizens) and reporting/ (the after-action
report and its page; the router serves it). simulation/ and reporting/ do not import each other."""
