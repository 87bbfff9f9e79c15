"""The audit log: who did what to which alert or account, and when. Append-only."""
