"""Citizen reports: ingest with acknowledgement after commit (group commit under load), triage by operators,
incidents, retention."""
