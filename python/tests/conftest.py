import os
import secrets
import subprocess

import pytest

from mandala.imports import Storage


def postgres_server():
    """The URL of the tests' PostgreSQL server (MANDALA_TEST_POSTGRES, else the file the ctest
    fixture `postgres` writes, named by MANDALA_TEST_POSTGRES_URL_FILE), or None."""
    url = os.environ.get("MANDALA_TEST_POSTGRES", "").strip()
    if url:
        return url
    path = os.environ.get("MANDALA_TEST_POSTGRES_URL_FILE", "")
    if path and os.path.isfile(path):
        with open(path) as f:
            url = f.readline().strip()
    return url or None


def _psql(server, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", f"{server}/postgres", "-c", sql], check=True,
                   capture_output=True)


@pytest.fixture
def postgres_database():
    """A fresh database on the tests' server, dropped afterwards: its URL (a store location).
    Without a server the test is skipped, or fails when MANDALA_REQUIRE_POSTGRES=1."""
    server = postgres_server()
    if server is None:
        message = ("no PostgreSQL server for the tests: run them through ctest (fixture `postgres`) or set "
                   "MANDALA_TEST_POSTGRES to a server's URL")
        if os.environ.get("MANDALA_REQUIRE_POSTGRES") == "1":
            pytest.fail("MANDALA_REQUIRE_POSTGRES=1 but " + message)
        pytest.skip(message)
    name = f"mandala_py_{os.getpid()}_{secrets.token_hex(4)}"
    _psql(server, f'CREATE DATABASE "{name}"')
    yield f"{server}/{name}"
    _psql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _factory(request, tmp_path, backend):
    path = request.getfixturevalue("postgres_database") if backend == "postgres" else tmp_path / "store.db"
    opened = []

    def factory():
        if backend == "memory":
            if not opened:
                opened.append(Storage())
            return opened[0]
        return Storage(path)

    factory.persistent = backend != "memory"
    factory.backend = backend
    return factory


@pytest.fixture(params=["memory", "file", "postgres"])
def storage_factory(request, tmp_path):
    """Opens the test's storage; opening again reopens a file or database store (a memory store
    is kept)."""
    return _factory(request, tmp_path, request.param)


@pytest.fixture(params=["file", "postgres"])
def persistent_storage_factory(request, tmp_path):
    """storage_factory of the backends that keep calls after the storage is closed."""
    return _factory(request, tmp_path, request.param)
