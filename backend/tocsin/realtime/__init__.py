"""Real time: citizens' devices and operators over WebSockets.

Each API worker keeps its own connected clients (hub.py) and receives alert events from the bus; the database is the
record, so a device that reconnects, or a worker that missed events, catches up from it by sequence number.
"""
