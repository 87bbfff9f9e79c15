"""Alert templates: YAML files in `alerts/`, one per hazard, with texts in several languages.

Rendering uses a sandboxed Jinja2 environment with StrictUndefined: a variable without a value is refused with its
name, never rendered as an empty string into a public warning.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import yaml
from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tocsin.alerts.schemas import (
    AlertDraftIn,
    Category,
    Certainty,
    FromTemplateIn,
    Info,
    NamedValue,
    ResponseType,
    Severity,
    Urgency,
)
from tocsin.content import content_dir
from tocsin.errors import InvalidInput, NotFound

TEMPLATE_LANGUAGES = ("en", "fr", "de", "it", "es", "nl", "pl", "pt", "el")
TEXT_FIELDS = ("event", "headline", "description", "instruction")
MAX_HEADLINE = 160
ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateCap(_Strict):
    msgType: str = "Alert"
    category: Annotated[list[Category], Field(min_length=1)]
    responseType: list[ResponseType] = []
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    eventCode: list[NamedValue] = []
    expires_after_hours: Annotated[float, Field(gt=0, le=24 * 14)] = 12


class TemplateVariable(_Strict):
    description: str
    example: str


class TemplateTexts(_Strict):
    event: str
    headline: str
    description: str
    instruction: str


class AlertTemplate(_Strict):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    title: str
    cap: TemplateCap
    variables: dict[Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$")], TemplateVariable] = {}
    texts: dict[str, TemplateTexts]

    @model_validator(mode="after")
    def _complete(self) -> AlertTemplate:
        missing = [lang for lang in TEMPLATE_LANGUAGES if lang not in self.texts]
        if missing:
            raise ValueError(f"texts: missing languages {', '.join(missing)}")
        declared = set(self.variables)
        for lang, texts in self.texts.items():
            for name in TEXT_FIELDS:
                used = variables_in(getattr(texts, name))
                undeclared = used - declared
                if undeclared:
                    raise ValueError(f"texts.{lang}.{name}: undeclared variables {sorted(undeclared)}")
        used_en = set().union(*(variables_in(getattr(self.texts["en"], n)) for n in TEXT_FIELDS))
        unused = declared - used_en
        if unused:
            raise ValueError(f"variables: {sorted(unused)} declared but not used in the English texts")
        return self

    def examples(self) -> dict[str, str]:
        return {name: variable.example for name, variable in self.variables.items()}


def variables_in(source: str) -> set[str]:
    return set(meta.find_undeclared_variables(_env.parse(source)))


def render_text(source: str, values: dict[str, str], field: str) -> str:
    try:
        return _env.from_string(source).render(**values).strip()
    except TemplateError as exc:
        match = re.search(r"'(\w+)' is undefined", str(exc))
        name = match.group(1) if match else None
        message = f"no value given for the template variable '{name}'" if name else f"template error: {exc}"
        raise InvalidInput(message, field=f"variables.{name}" if name else field) from None


def load_template(path: Path) -> AlertTemplate:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    template = AlertTemplate.model_validate(data)
    if template.id != path.stem:
        raise ValueError(f"{path.name}: id '{template.id}' differs from the file name")
    return template


def default_templates_dir() -> Path:
    return content_dir("alerts")


@cache
def load_templates(directory: Path) -> dict[str, AlertTemplate]:
    if not directory.is_dir():
        return {}
    return {path.stem: load_template(path) for path in sorted(directory.glob("*.yaml"))}


def get_template(directory: Path, template_id: str) -> AlertTemplate:
    template = load_templates(directory).get(template_id)
    if template is None:
        raise NotFound(f"no alert template '{template_id}'", field="template", code="template_not_found")
    return template


def render_info(template: AlertTemplate, language: str, values: dict[str, str]) -> dict[str, Any]:
    texts = template.texts[language]
    rendered = {name: render_text(getattr(texts, name), values, f"texts.{language}.{name}") for name in TEXT_FIELDS}
    if len(rendered["headline"]) > MAX_HEADLINE:
        raise InvalidInput(
            f"the headline in {language} is longer than {MAX_HEADLINE} characters once filled in",
            field="variables",
        )
    return {
        "language": language,
        "category": list(template.cap.category),
        "responseType": list(template.cap.responseType),
        "urgency": template.cap.urgency,
        "severity": template.cap.severity,
        "certainty": template.cap.certainty,
        "eventCode": [code.model_dump() for code in template.cap.eventCode],
        **rendered,
    }


def draft_from_template(
    template: AlertTemplate, request: FromTemplateIn, *, sender_name: str, now_plus: Any
) -> AlertDraftIn:
    """The draft an operator gets from a template: one info per language, the same area in each."""
    languages = request.languages or list(template.texts)
    for index, language in enumerate(languages):
        if language not in template.texts:
            raise InvalidInput(
                f"the template '{template.id}' has no texts in '{language}'", field=f"languages[{index}]"
            )
    unknown = set(request.variables) - set(template.variables)
    if unknown:
        raise InvalidInput(f"unknown template variables: {', '.join(sorted(unknown))}", field="variables")
    expires = request.expires or now_plus(timedelta(hours=template.cap.expires_after_hours))
    infos = []
    for language in languages:
        info = render_info(template, language, request.variables)
        info.update(
            senderName=sender_name,
            onset=request.onset,
            expires=expires,
            web=request.web,
            contact=request.contact,
            area=[request.area.model_dump()],
        )
        infos.append(Info.model_validate(info))
    return AlertDraftIn(status=request.status, info=infos, exercise_id=request.exercise_id)
