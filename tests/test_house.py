"""The house rules a newcomer relies on: declared dependencies, imports that point down, docs
whose links resolve. Static checks over the source tree (no imports of the code under test)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]

# Imports point down: a package may import packages of its own rank or lower, never higher.
RANKS = {
    "app": 3,
    "serve": 3,
    "inspection": 2,
    "classification": 1,
    "anomaly": 1,
    "explain": 1,
    "meltingtank": 1,
    "store": 0,
    "imaging": 0,
    "synthetic": 0,
}
# Entry points (argparse shells): nothing imports them; shared code lives in library modules.
CLI_MODULES = {"train", "predict", "evaluate", "__main__", "report", "preview"}
# Which optional extra may serve third-party imports of a given package (besides the core).
EXTRAS_FOR = {"serve": {"serve", "postgres"}, "inspection": {"ray"}, "store": {"postgres"}}
TEST_EXTRAS = {"dev", "serve", "ray", "postgres"}


def _python_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    """Absolute module names imported anywhere in the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append(module)
            names.extend(f"{module}.{alias.name}" for alias in node.names)
    return names


@cache
def _project_modules() -> dict[str, Path]:
    return {_module_name(p): p for package in RANKS for p in _python_files(package)}


def _local_target(name: str) -> str | None:
    """The project module an import names (longest existing prefix), or None if third-party."""
    modules = _project_modules()
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def _local_edges() -> list[tuple[str, str]]:
    edges = set()
    for module, path in _project_modules().items():
        for name in _imports(path):
            target = _local_target(name)
            if target and target != module and not module.startswith(target + "."):
                edges.add((module, target))
    return sorted(edges)


def test_imports_point_down():
    upward = [
        f"{a} -> {b}" for a, b in _local_edges() if RANKS[b.split(".")[0]] > RANKS[a.split(".")[0]]
    ]
    assert not upward, "imports must point down (app, serve -> inspection -> ...):\n" + "\n".join(
        upward
    )


def test_no_module_imports_a_cli_module():
    offenders = [f"{a} -> {b}" for a, b in _local_edges() if b.rsplit(".", 1)[-1] in CLI_MODULES]
    assert not offenders, "CLI modules are shells; move shared code to a library module:\n" + (
        "\n".join(offenders)
    )


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for a, b in _local_edges():
        graph.setdefault(a, set()).add(b)
    packages: dict[str, set[str]] = {}
    for a, b in _local_edges():
        pa, pb = a.split(".")[0], b.split(".")[0]
        if pa != pb:
            packages.setdefault(pa, set()).add(pb)
    for g, what in ((graph, "modules"), (packages, "packages")):
        state: dict[str, int] = {}

        def visit(node, trail, g=g, state=state, what=what):
            state[node] = 1
            for nxt in sorted(g.get(node, ())):
                if state.get(nxt) == 1:
                    cycle = trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt]
                    pytest.fail(f"import cycle between {what}: " + " -> ".join(cycle))
                if nxt not in state:
                    visit(nxt, trail + [nxt])
            state[node] = 2

        for node in sorted(g):
            if node not in state:
                visit(node, [node])


def test_the_import_check_sees_a_planted_upward_import(tmp_path, monkeypatch):
    bad = ROOT / "store" / "_planted_upward_import.py"
    assert not bad.exists()
    _project_modules.cache_clear()
    bad.write_text("import inspection.pipeline\n", encoding="utf-8")
    try:
        with pytest.raises(AssertionError, match="store._planted_upward_import -> inspection"):
            test_imports_point_down()
    finally:
        bad.unlink()
        _project_modules.cache_clear()


# --- declared dependencies -------------------------------------------------------------------


@cache
def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _declared() -> dict[str, set[str]]:
    """Distribution name -> the groups declaring it ("core" or the extra's name)."""
    project = _pyproject()["project"]
    groups = {"core": project.get("dependencies", [])}
    groups.update(project.get("optional-dependencies", {}))
    found: dict[str, set[str]] = {}
    for group, reqs in groups.items():
        for req in reqs:
            found.setdefault(canonicalize_name(Requirement(req).name), set()).add(group)
    return found


def _third_party(path: Path) -> set[str]:
    helpers = {p.stem for p in (ROOT / "tests").glob("*.py")}
    local = set(RANKS) | helpers | {"tests", "benchmarks", "app", "ui", "views"}
    tops = {name.split(".")[0] for name in _imports(path) if name}
    return {
        t
        for t in tops
        if t not in sys.stdlib_module_names and t not in local and not t.startswith("test_")
    }


@pytest.mark.parametrize("package", [*RANKS, "tests", "benchmarks"])
def test_every_third_party_import_is_declared_in_pyproject(package):
    dists = metadata.packages_distributions()
    declared = _declared()
    allowed = {"core"} | EXTRAS_FOR.get(package, set())
    if package in ("tests", "benchmarks"):
        allowed |= TEST_EXTRAS
    missing = []
    for path in _python_files(package):
        for top in sorted(_third_party(path)):
            names = {canonicalize_name(d) for d in dists.get(top, [])}
            if not names:
                missing.append(f"{path.relative_to(ROOT)}: {top} (not installed)")
            elif not any(declared.get(n, set()) & allowed for n in names):
                missing.append(f"{path.relative_to(ROOT)}: {top} ({', '.join(sorted(names))})")
    assert not missing, f"declare in pyproject.toml ({sorted(allowed)}):\n" + "\n".join(missing)


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"requirements.txt pins exactly: {line}"
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_the_lock_pins_exactly_what_pyproject_declares_and_satisfies_its_ranges():
    locked, declared = _locked(), _declared()
    assert set(locked) == set(declared), (
        f"only in requirements.txt: {sorted(set(locked) - set(declared))}; "
        f"only in pyproject.toml: {sorted(set(declared) - set(locked))}"
    )
    project = _pyproject()["project"]
    reqs = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    for text in reqs:
        req = Requirement(text)
        version = locked[canonicalize_name(req.name)]
        assert req.specifier.contains(version), f"{version} does not satisfy {text}"


def test_installed_packages_are_the_locked_versions():
    wrong = []
    for name, version in _locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name} not installed (make install)")
            continue
        if installed != version:
            wrong.append(f"{name} {installed} installed, {version} locked")
    assert not wrong, "\n".join(wrong)


# --- documentation ---------------------------------------------------------------------------

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("doc", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_markdown_link_resolves(doc):
    broken = []
    for target in _LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)} links to missing files: {broken}"


_DOC_REFERENCE = re.compile(r"\b(?:docs/)?([A-Za-z_-]+\.md)\b")


def test_code_only_points_at_documents_that_exist():
    """Docstrings and --help name docs/ files; every such name must exist in the repo."""
    docs = {p.name for p in _markdown_files()}
    missing = []
    for package in [*RANKS, "benchmarks"]:
        if not (ROOT / package).is_dir():
            continue
        for path in _python_files(package):
            for name in _DOC_REFERENCE.findall(path.read_text(encoding="utf-8")):
                if name not in docs:
                    missing.append(f"{path.relative_to(ROOT)}: {name}")
    assert not missing, "references to documents that do not exist:\n" + "\n".join(missing)


# --- rooms of one job -------------------------------------------------------------------------

MAX_FUNCTION_LINES = 80


def _long_functions() -> list[str]:
    found = []
    for package in RANKS:
        for path in _python_files(package):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = node.end_lineno - node.lineno + 1
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    if lines > MAX_FUNCTION_LINES:
                        found.append(f"{where} {node.name} ({lines})")
    return found


def test_no_function_in_the_packages_is_over_80_lines():
    """A function that long does several jobs: give each its own function (or module)."""
    long = _long_functions()
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_the_length_check_sees_a_planted_long_function():
    bad = ROOT / "store" / "_planted_long_function.py"
    assert not bad.exists()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    bad.write_text(f"def planted():\n{body}", encoding="utf-8")
    try:
        assert any("_planted_long_function.py:1 planted" in f for f in _long_functions())
    finally:
        bad.unlink()


def test_the_readme_layout_lists_every_top_level_folder():
    """README's "Layout" block names each folder of the repository (hidden ones aside) and no
    folder that is not there."""
    import subprocess

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    listed = {
        line.split()[0].rstrip("/") for line in block.splitlines() if "/" in line.split(" ")[0]
    }
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    folders = {path.split("/")[0] for path in tracked if "/" in path and not path.startswith(".")}
    assert listed == folders, (
        f"only in README: {listed - folders}; not in README: {folders - listed}"
    )
