"""Test-wide safety (quiet TensorFlow, offline W&B, no test writes into weights/ or data/) and
the review-log database fixtures: every `review_url` test runs on SQLite and on PostgreSQL."""

import itertools
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

_database_numbers = itertools.count()


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory, monkeypatch):
    """Point runs, data and W&B at a per-test temporary folder."""
    root = tmp_path_factory.mktemp("defectlens")
    monkeypatch.setenv("DEFECTLENS_WEIGHTS", str(root / "weights"))
    monkeypatch.setenv("DEFECTLENS_DATA", str(root / "data"))
    monkeypatch.setenv("WANDB_DIR", str(root / "wandb"))
    return root


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for this test session (per xdist worker); fails under CI=true."""
    from postgres_server import PostgresUnavailable, start

    try:
        server = start()
    except PostgresUnavailable as exc:
        message = f"PostgreSQL review-log tests need a server: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def review_url(request):
    """The review log's database URL, once per backend: SQLite in the data folder, or a fresh
    database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        from store import data_dir

        return f"sqlite:///{data_dir() / 'review.db'}"
    server = request.getfixturevalue("postgres_server")
    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    name += f"_{next(_database_numbers)}"
    return server.create_database(name)
