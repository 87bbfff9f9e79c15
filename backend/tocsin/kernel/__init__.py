"""What every domain shares and none owns: the unit of work (one transaction, then its events), the bus channel
names, the audit trail's writer and the exercise clock. Depends on the models and the foundation modules only, so
every domain may import it and it imports no domain (docs/architecture.md)."""
