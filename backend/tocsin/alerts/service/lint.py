"""The glossary's findings on an alert's texts, while it is drafted and approved. Warnings only: they never block."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts.service.queries import cap_content, get_alert
from tocsin.glossary import service as glossary
from tocsin.glossary.lint import glossary_language
from tocsin.glossary.schemas import AlertLintOut, Finding, InfoLintOut

LINTED_FIELDS = ("headline", "description", "instruction")


async def lint_alert(session: AsyncSession, *, alert_id: uuid.UUID) -> AlertLintOut:
    """Findings for the headline, description and instruction of each info, in the info's language. An info in a
    language the glossary does not have gets none."""
    message = cap_content(await get_alert(session, alert_id=alert_id))
    linter = await glossary.linter(session)

    def lint_all() -> list[InfoLintOut]:
        infos: list[InfoLintOut] = []
        for index, info in enumerate(message.info):
            lang = glossary_language(info.lang)
            fields: dict[str, list[Finding]] = {}
            for name in LINTED_FIELDS:
                text = getattr(info, name)
                fields[name] = linter.lint(text, lang) if lang is not None and text else []
            infos.append(InfoLintOut(index=index, language=info.lang, lang=lang, fields=fields))
        return infos

    # In a thread: the first text in a language loads that language's dictionary.
    return AlertLintOut(alert_id=alert_id, infos=await asyncio.to_thread(lint_all))
