"""Where Tocsin's content is: alert templates (`alerts/`), the glossary (`glossary/`), scenarios (`scenarios/`).

People edit the folders at the top of the repository. A build copies them into the package (`tocsin/_content/`, see
`setup.py`), so a wheel, a non-editable install and the Docker image carry them; a source checkout (editable install)
has no copy and reads the folders in place. `TOCSIN_ALERTS_DIR`, `TOCSIN_GLOSSARY_DIR` and `TOCSIN_SCENARIOS_DIR`
override both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

ContentName = Literal["alerts", "glossary", "scenarios"]
PACKAGED = Path(__file__).resolve().parent / "_content"
CHECKOUT = Path(__file__).resolve().parents[2]


def content_dir(name: ContentName) -> Path:
    """The packaged copy of a content folder when this is an installed package, else the checkout's folder."""
    packaged = PACKAGED / name
    return packaged if packaged.is_dir() else CHECKOUT / name
