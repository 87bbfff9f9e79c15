"""The live exercise, run by the scheduler process: the timetable of injects, contingencies and scripted player
actions (timetable.py), each fired in one unit of work (live.py, steps.py, actions.py), and the synthetic citizens
who play the population over the real citizen protocol (devices.py, population.py, links.py). runner.py keeps the
running exercises in line with the database."""
