"""A non-editable install carries its content: the wheel is built, installed in a fresh virtual environment, and from
outside the checkout the CLI lists the alert templates, the glossary and the scenarios (the last through a running
`tocsin serve`, the way an exercise finds them)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.served import clean_environment, serving


def run(args: list[str], *, env: dict[str, str], cwd: Path, stdin: str | None = None) -> str:
    done = subprocess.run(args, env=env, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh virtual environment with the wheel of this checkout installed in it (not editable), and the
    environment to run it in. It borrows its dependencies from the running environment through a .pth file, so
    nothing is downloaded; the borrowed folder's own .pth files (an editable tocsin among them) are not run."""
    work = tmp_path_factory.mktemp("wheel")
    run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(work / "dist"), str(REPO)],
        env=clean_environment(),
        cwd=work,
    )
    (wheel,) = (work / "dist").glob("tocsin-*.whl")
    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env=clean_environment(), cwd=work)
    python = venv / "bin" / "python"
    site = Path(
        run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            env=clean_environment(),
            cwd=work,
        ).strip()
    )
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "borrowed-dependencies.pth").write_text("\n".join(sorted(borrowed)) + "\n", encoding="utf-8")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--ignore-installed",
            str(wheel),
        ],
        env=clean_environment(),
        cwd=work,
    )
    return venv, clean_environment(TOCSIN_DATA_DIR=str(work / "data"))


def repo_names(folder: str) -> set[str]:
    return {path.stem for path in (REPO / folder).rglob("*.yaml")}


class TestInstalledWheel:
    def test_tocsin_runs_from_the_installed_wheel(self, installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
        venv, env = installed
        where = run(
            [str(venv / "bin" / "python"), "-c", "import tocsin; print(tocsin.__file__)"], env=env, cwd=tmp_path
        )
        assert Path(where.strip()).is_relative_to(venv)

    def test_alert_templates_are_listed(self, installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
        venv, env = installed
        output = run([str(venv / "bin" / "tocsin"), "alerts", "templates"], env=env, cwd=tmp_path)
        templates = [json.loads(line) for line in output.splitlines()]
        assert {t["id"] for t in templates} == repo_names("alerts")
        assert {"flood", "earthquake", "all-clear"} <= {t["id"] for t in templates}

    def test_glossary_is_found(self, installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
        venv, env = installed
        output = run([str(venv / "bin" / "tocsin"), "glossary", "check"], env=env, cwd=tmp_path)
        assert output.strip() == f"{len(repo_names('glossary/concepts'))} concepts, all valid"

    def test_scenarios_are_listed_by_the_installed_server(
        self, installed: tuple[Path, dict[str, str]], tmp_path: Path
    ) -> None:
        venv, env = installed
        tocsin = str(venv / "bin" / "tocsin")
        with serving([tocsin, "serve", "--demo"], env, tmp_path, tmp_path / "serve.log") as served:
            password = re.search(r"^\s+planner\s+(\S+)\s+roles:", served.text(), re.M)
            assert password, served.text()
            output = run(
                [
                    tocsin,
                    "exercise",
                    "scenarios",
                    "--url",
                    served.base,
                    "--user",
                    "planner",
                    "--password",
                    password.group(1),
                ],
                env=env,
                cwd=tmp_path,
            )
        listed = {line.split()[0] for line in output.splitlines() if line.strip()}
        assert listed == repo_names("scenarios")
        assert "romagna-river-flood" in listed
