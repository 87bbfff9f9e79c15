"""Exercises: the scenario library (`scenarios/`), exercises run from it on the real platform (scenario clock,
injects, scripted actions, contingencies, synthetic citizens), their evaluation and after-action reports."""
