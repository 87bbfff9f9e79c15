"""All ORM models, in one package: one import for Alembic, no import cycles. Behaviour lives in the domain packages."""

from tocsin.models.alerts import Alert, AlertArea, AlertEvent
from tocsin.models.audit import AuditEntry
from tocsin.models.exercises import (
    Exercise,
    ExerciseDevice,
    ExerciseEvent,
    ExerciseImprovement,
    ExerciseObservation,
    ExerciseRating,
    ExerciseReceipt,
)
from tocsin.models.glossary import GlossaryConcept, GlossaryProposal, GlossaryVersion
from tocsin.models.realtime import AlertDelivery, AlertResponse, Device, Incident, OperatorEvent, Report
from tocsin.models.scheduler import SchedulerHeartbeat
from tocsin.models.users import Organisation, User

__all__ = [
    "Alert",
    "AlertArea",
    "AlertDelivery",
    "AlertEvent",
    "AlertResponse",
    "AuditEntry",
    "Device",
    "Exercise",
    "ExerciseDevice",
    "ExerciseEvent",
    "ExerciseImprovement",
    "ExerciseObservation",
    "ExerciseRating",
    "ExerciseReceipt",
    "GlossaryConcept",
    "GlossaryProposal",
    "GlossaryVersion",
    "Incident",
    "OperatorEvent",
    "Organisation",
    "Report",
    "SchedulerHeartbeat",
    "User",
]
