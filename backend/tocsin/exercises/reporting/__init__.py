"""The after-action report of an exercise: read and computed (report.py, figures.py), and rendered as one
self-contained HTML page (page.py, charts.py, templates/report.html)."""
