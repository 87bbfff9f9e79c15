"""The unit of work: one request, scheduled job or exercise step is one transaction, and its events go out only
after that transaction committed.

Services add rows to `work.session` and queue events with `work.publish_after_commit`; they never commit, roll back
or publish. The boundary owns the transaction:

- a route takes `WorkDep`: when the route returns, the dependency commits and then publishes, before the response
  is sent (so a client is never told of a change that did not commit); when the route raises, nothing is committed
  and nothing is published;
- a job or an exercise step runs inside `async with unit_of_work(database, bus) as work:`, which commits and
  publishes on a clean exit and rolls back on an exception.

Publishing is the fast path, never the record: every event a client must not miss can be recovered from the database
(alerts by delivery sequence, operator-feed events by their `seq`), and `Bus.publish` never raises into the boundary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.bus import Bus
from tocsin.db import Database, SessionDep


class UnitOfWork:
    def __init__(self, session: AsyncSession, bus: Bus) -> None:
        self.session = session
        self.bus = bus
        self._events: list[tuple[str, dict[str, Any]]] = []

    def publish_after_commit(self, channel: str, message: dict[str, Any]) -> None:
        """Queue an event; it is published, in queue order, only once this unit of work committed."""
        self._events.append((channel, message))

    @property
    def queued(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self._events)

    async def commit(self) -> None:
        """The boundary's one commit, then the queued events. Only boundaries call this."""
        await self.session.commit()
        events, self._events = self._events, []
        for channel, message in events:
            await self.bus.publish(channel, message)

    async def rollback(self) -> None:
        self._events.clear()
        await self.session.rollback()


@asynccontextmanager
async def unit_of_work(database: Database, bus: Bus) -> AsyncIterator[UnitOfWork]:
    """The boundary of a job or an exercise step: commit and publish on a clean exit, roll back on an exception."""
    async with database.sessions() as session:
        work = UnitOfWork(session, bus)
        try:
            yield work
        except BaseException:
            await work.rollback()
            raise
        await work.commit()


async def _request_work(request: Request, session: SessionDep) -> AsyncIterator[UnitOfWork]:
    work = UnitOfWork(session, request.app.state.bus)
    yield work  # a route that raises ends here: the session closes and rolls back, nothing is published
    await work.commit()


# scope="function": the commit runs when the route returns, before the response is sent.
WorkDep = Annotated[UnitOfWork, Depends(_request_work, scope="function")]
