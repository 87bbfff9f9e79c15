"""The life of an alert: draft -> approve -> issue (now or scheduled) -> update / cancel / expire.

Other domains call alerts through this package (`from tocsin.alerts import service as alerts`). By role:

- `drafts`: new drafts (drafted, from a template, imported as CAP, an Update or Cancel) and edits of a draft;
- `lifecycle`: approve, issue (now or scheduled), discard, and the end of an exercise's alerts;
- `jobs`: the scheduler's work: issue the scheduled alerts that are due, expire the ones whose time passed;
- `queries`: reading alerts; `lint`: the glossary's findings on an alert's texts;
- `guards` (row locks and the checks under them) and `events` (delivery events) serve the others.

Every state change is checked against the one table in alerts/transitions.py. Every function takes the session (or,
where it queues delivery events, the unit of work) first, adds to its transaction, and never commits or rolls back:
the boundary commits once and then publishes. Every change is written to the audit log in the same transaction.
"""

from tocsin.alerts.service.drafts import create_draft, edit_draft, import_cap, start_follow_up
from tocsin.alerts.service.events import AlertEventOut
from tocsin.alerts.service.jobs import expire_due, issue_due
from tocsin.alerts.service.lifecycle import approve, discard, end_exercise_alerts, issue
from tocsin.alerts.service.lint import lint_alert
from tocsin.alerts.service.queries import (
    ACTIVE_MSG_TYPES,
    PUBLIC_STATES,
    AlertQuery,
    areas_of,
    cap_content,
    count_events,
    find_alerts,
    get_alert,
    is_active,
    utcnow,
)

__all__ = [
    "ACTIVE_MSG_TYPES",
    "PUBLIC_STATES",
    "AlertEventOut",
    "AlertQuery",
    "approve",
    "areas_of",
    "cap_content",
    "count_events",
    "create_draft",
    "discard",
    "edit_draft",
    "end_exercise_alerts",
    "expire_due",
    "find_alerts",
    "get_alert",
    "import_cap",
    "is_active",
    "issue",
    "issue_due",
    "lint_alert",
    "start_follow_up",
    "utcnow",
]
