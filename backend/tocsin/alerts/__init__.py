"""Alerts: drafting, approval, issue, update, cancel and expiry of CAP 1.2 messages; CAP XML in and out; templates;
the public Atom feed."""
