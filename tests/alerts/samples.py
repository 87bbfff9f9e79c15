"""CAP messages for the tests.

`cap_messages/` holds the team's own messages (always there, in every clone). The real-world corpus in
`../shared/cap/samples` beside the checkout is used in addition when it is present; its tests skip and say why when it
is absent, and fail under CI (CI=true), where it must be present.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import pytest

OWN = Path(__file__).resolve().parent / "cap_messages"
OWN_VALID = sorted((OWN / "valid").glob("*.xml"))
OWN_INVALID = sorted((OWN / "invalid").glob("*.xml"))
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "cap" / "samples"
IN_CI = os.environ.get("CI", "").lower() == "true"


def own(name: str) -> Path:
    """One of our messages by file name, `valid/...` or `invalid/...`."""
    path = OWN / name
    assert path.is_file(), f"no CAP test message {name}"
    return path


def corpus_absent() -> NoReturn:
    message = f"the real-world CAP corpus is expected at {CORPUS}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: refusing to skip)")
    pytest.skip(f"{message}; it is absent, so only the project's own CAP messages were used")


def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        corpus_absent()
    return CORPUS


def params(kind: str) -> list[Any]:
    """Our messages of a kind (`valid`, `invalid`), then the corpus's (`valid`, `invalid`, `signatures`), as pytest
    parameters. Without the corpus, one parameter stands for it, and the test skips (fails under CI) through
    `corpus_file`."""
    found = [pytest.param(path, id=f"own/{path.name}") for path in sorted((OWN / kind).glob("*.xml"))]
    if CORPUS.is_dir():
        found += [pytest.param(path, id=f"corpus/{path.name}") for path in sorted((CORPUS / kind).glob("*"))]
    else:
        found.append(pytest.param(None, id="corpus-absent"))
    return found


def corpus_file(path: Path | None) -> Path:
    """The parameter given by `params`, or skip (fail under CI) when it stands for an absent corpus."""
    if path is None:
        corpus_absent()
    return path
