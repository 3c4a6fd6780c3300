import pytest

from mandala.imports import Storage


@pytest.fixture(params=["memory", "file"])
def storage_factory(request, tmp_path):
    """Opens the test's storage; opening again reopens a file store (a memory store is kept)."""
    path = tmp_path / "store.db"
    opened = []

    def factory():
        if request.param == "memory":
            if not opened:
                opened.append(Storage())
            return opened[0]
        return Storage(path)

    factory.persistent = request.param == "file"
    return factory
