"""Every module imports in a clean virtual environment built from pyproject.toml alone.

No network: a throwaway venv (`python -m venv --without-pip`) gets, by symbolic link, only the
installed distributions that pyproject.toml declares (core dependencies plus the serve, postgres
and ray extras) and what they require in turn (Requires-Dist, markers evaluated). The project
itself is put on its path as an editable install would. A module that imports an undeclared
distribution then fails there even though the development venv has it installed; the test
plants one to prove it.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import tomllib
import venv
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "anomaly",
    "classification",
    "explain",
    "imaging",
    "inspection",
    "meltingtank",
    "serve",
    "store",
    "synthetic",
)
EXTRAS = ("serve", "postgres", "ray")
# Alembic's migration scripts run only inside Alembic (store/migrate.py drives them).
SKIP = ("store.migrations",)


def _declared_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    texts = list(project["dependencies"])
    for extra in EXTRAS:
        texts += project["optional-dependencies"][extra]
    return [Requirement(t) for t in texts]


def _wanted(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in extras | {""})


@cache
def _closure() -> dict[str, metadata.Distribution]:
    """Canonical name -> installed distribution, for the declared ones and all they need."""
    found: dict[str, metadata.Distribution] = {}
    queue = [(r, set(r.extras)) for r in _declared_requirements()]
    seen_extras: dict[str, set[str]] = {}
    while queue:
        req, extras = queue.pop()
        name = canonicalize_name(req.name)
        if name in found and extras <= seen_extras[name]:
            continue
        try:
            dist = found.get(name) or metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue  # not installed here: nothing to link (and nothing a module can import)
        found[name] = dist
        seen_extras[name] = seen_extras.get(name, set()) | extras
        for text in dist.requires or []:
            sub = Requirement(text)
            if _wanted(sub, seen_extras[name]):
                queue.append((sub, set(sub.extras)))
    return found


def _site_files(dist: metadata.Distribution) -> list[tuple[str, ...]]:
    """The dist's files inside site-packages, as path parts (scripts in bin/ left out)."""
    parts = []
    for file in dist.files or []:
        p = Path(file).parts
        if p and p[0] != ".." and not p[0].endswith(".pth"):
            parts.append(p)
    return parts


def _link_site_packages(site: Path) -> None:
    """Link into `site` the files of the closure's distributions, and nothing of any other.

    A folder that only closure distributions own is linked whole; a folder shared with another
    installed distribution (namespace packages such as google/) is made real and its entries
    linked one level down, recursively.
    """
    closure = _closure()
    owners: dict[tuple[str, ...], set[str]] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for parts in _site_files(dist):
            for n in range(1, len(parts) + 1):
                owners.setdefault(parts[:n], set()).add(name)
    children: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for dist in closure.values():
        for parts in _site_files(dist):
            for n in range(1, len(parts) + 1):
                children.setdefault(parts[: n - 1], set()).add(parts[:n])

    def link(prefix: tuple[str, ...]) -> None:
        target = site.joinpath(*prefix)
        mine = [closure[i] for i in owners[prefix] if i in closure]
        if owners[prefix] <= closure.keys() or not children.get(prefix):
            # wholly the closure's, or a single file (a file cannot be shared out any finer)
            source = Path(mine[0].locate_file("")).joinpath(*prefix)
            if source.exists():
                target.symlink_to(source)
            return
        target.mkdir()
        for child in sorted(children.get(prefix, ())):
            link(child)

    for top in sorted(children.get((), ())):
        if top[0] != "__pycache__":
            link(top)


IMPORT_ALL = textwrap.dedent(
    """
    import importlib, json, sys
    modules = json.loads(sys.argv[1])
    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - every failure is reported
            missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
            failed[name] = f"{type(exc).__name__}: {exc}" + (f" [{missing}]" if missing else "")
    print(json.dumps(failed))
    """
)


def _project_modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            if not name.startswith(SKIP):
                names.append(name)
    # The app's library modules (app/ui, imported as `ui`); the pages under app/views and
    # app/Home.py are Streamlit scripts that draw on import, covered by the AppTest tests.
    names += [f"ui.{p.stem}" for p in sorted((ROOT / "app" / "ui").glob("*.py"))]
    return [n.replace("ui.__init__", "ui") for n in names]


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("clean_venv")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(home / "venv")
    python = home / "venv" / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    _link_site_packages(site)
    # The project as an editable install puts it on the path; app/ for the `ui` package.
    (site / "defectlens.pth").write_text(f"{ROOT}\n{ROOT / 'app'}\n", encoding="utf-8")
    return python


def _import_in(python: Path, modules: list[str], extra_path: Path | None = None) -> dict:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "DEFECTLENS_WEIGHTS": os.environ.get("DEFECTLENS_WEIGHTS", ""),
        "DEFECTLENS_DATA": os.environ.get("DEFECTLENS_DATA", ""),
    }
    code = IMPORT_ALL
    if extra_path is not None:
        code = f"import sys; sys.path.append({str(extra_path)!r})\n" + code
    result = subprocess.run(
        [python, "-I", "-c", code, json.dumps(modules)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_clean_venv_holds_only_declared_distributions(clean_python):
    names = set(_closure())
    declared = {canonicalize_name(r.name) for r in _declared_requirements()}
    assert declared <= names, sorted(declared - names)
    for undeclared in ("pytest", "ruff", "playwright"):
        assert undeclared not in names, f"{undeclared} is dev-only, yet in the closure"


def test_every_module_imports_with_only_the_declared_dependencies(clean_python):
    failed = _import_in(clean_python, _project_modules())
    assert not failed, "modules that fail in a venv built from pyproject.toml:\n" + "\n".join(
        f"{k}: {v}" for k, v in failed.items()
    )


def test_an_undeclared_import_fails_there(clean_python, tmp_path):
    """The proof the venv is clean: pytest is installed here but declared only for [dev]."""
    assert metadata.distribution("pytest")  # importable in the development venv
    (tmp_path / "planted_undeclared.py").write_text("import pytest\n", encoding="utf-8")
    failed = _import_in(clean_python, ["planted_undeclared", "store"], extra_path=tmp_path)
    assert set(failed) == {"planted_undeclared"}
    assert "[pytest]" in failed["planted_undeclared"]
