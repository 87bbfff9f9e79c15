"""The one packaging step pyproject.toml cannot say: the content folders go into the package.

`alerts/`, `glossary/` and `scenarios/` stay at the top of the repository, where people edit them. Building a wheel
copies them to `tocsin/_content/`, so a non-editable install and the Docker image find them (`tocsin/content.py`).
An editable install gets no copy: it reads the folders of the checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
CONTENT = ("alerts", "glossary", "scenarios")


class BuildPyWithContent(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in CONTENT:
            target = Path(self.build_lib) / "tocsin" / "_content" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(HERE / name, target, ignore=shutil.ignore_patterns(".*", "__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithContent})
