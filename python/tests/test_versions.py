"""Code versions of Python ops: Storage(deps_path=...) versions each op by the code it reaches."""

import importlib.util
import os
import sys
import textwrap

import pytest

from mandala.imports import Storage, op

MAIN = '''
import helpers

LIMIT = 10

@op
def work(x):
    """Doubles, plus the helper."""
    record("work")
    return 2 * x + helpers.offset(x)

@op
def other(x):
    record("other")
    return x + LIMIT
'''

HELPERS = """
def offset(x):
    return 1
"""


class Project:
    """Modules written to a folder and imported afresh (as after editing them and restarting)."""

    def __init__(self, root):
        self.root = root
        self.runs = []
        self.n = 0

    def write(self, name, source):
        path = self.root / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        self.n += 1
        os.utime(path, (1_000_000 + self.n, 1_000_000 + self.n))  # no stale caches of the source

    def load(self, main=MAIN, helpers=HELPERS):
        self.write("helpers", helpers)
        self.write("pipeline", "from mandala.imports import op\n" + textwrap.dedent(main))
        modules = {}
        for name in ("helpers", "pipeline"):
            sys.modules.pop(name, None)
        sys.path.insert(0, str(self.root))
        try:
            for name in ("helpers", "pipeline"):
                spec = importlib.util.spec_from_file_location(name, self.root / f"{name}.py")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                if name == "pipeline":
                    module.record = self.runs.append
                spec.loader.exec_module(module)
                modules[name] = module
        finally:
            sys.path.remove(str(self.root))
        return modules["pipeline"]


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    yield Project(root)
    for name in ("helpers", "pipeline"):
        sys.modules.pop(name, None)


def run(project, db, module, x=1, **options):
    with Storage(db, deps_path=project.root, **options) as storage:
        result = module.work(x)
    return storage, result


def test_editing_the_body_gives_a_new_version_and_recomputes(project, tmp_path):
    db = tmp_path / "s.db"
    _, first = run(project, db, project.load())
    assert project.runs == ["work"]
    storage, second = run(project, db, project.load(main=MAIN.replace("2 * x", "3 * x")))
    assert project.runs == ["work", "work"]
    assert storage.unwrap(second) == 4 and second.hid != first.hid
    versions = storage.versions(project.load().work, show=False)
    assert [v["number"] for v in versions] == [1, 2]
    names = {c["name"] for c in versions[0]["components"]}
    assert names == {"op work", "helpers.offset"}
    diff = storage.diff("work", show=False)
    assert "-    return 2 * x + helpers.offset(x)" in diff
    assert "+    return 3 * x + helpers.offset(x)" in diff


def test_comments_docstrings_and_formatting_do_not_count(project, tmp_path):
    db = tmp_path / "s.db"
    _, first = run(project, db, project.load())
    cosmetic = MAIN.replace(
        "    return 2 * x + helpers.offset(x)",
        "    # a comment\n\n    return (2*x +\n            helpers.offset( x ))  # another",
    ).replace('"""Doubles, plus the helper."""', '"""Another docstring."""')
    assert cosmetic != MAIN
    storage, again = run(project, db, project.load(main=cosmetic, helpers=HELPERS + "\n# the end\n"))
    assert project.runs == ["work"], "not recomputed"
    assert again.hid == first.hid
    assert len(storage.versions("work", show=False)) == 1


def test_editing_a_helper_in_another_module_gives_a_new_version(project, tmp_path):
    db = tmp_path / "s.db"
    run(project, db, project.load())
    storage, result = run(project, db, project.load(helpers=HELPERS.replace("return 1", "return 5")))
    assert project.runs == ["work", "work"]
    assert storage.unwrap(result) == 7
    assert "helpers.offset" in storage.diff("work", show=False)


def test_editing_a_global_the_op_reads_gives_a_new_version(project, tmp_path):
    db = tmp_path / "s.db"
    module = project.load()
    with Storage(db, deps_path=project.root) as storage:
        module.other(1)
    module = project.load(main=MAIN.replace("LIMIT = 10", "LIMIT = 20"))
    with Storage(db, deps_path=project.root) as storage:
        r = module.other(1)
        module.work(1)
    assert storage.unwrap(r) == 21
    assert project.runs == ["other", "other", "work"]
    components = {c["name"]: c for c in storage.versions("other", show=False)[-1]["components"]}
    assert components["global pipeline.LIMIT"]["code"] == "LIMIT = 20"
    assert {c["name"] for c in storage.versions("work", show=False)[0]["components"]} == {
        "op work",
        "helpers.offset",
    }, "work does not read LIMIT"


def test_returning_to_earlier_code_reuses_its_calls(project, tmp_path):
    db = tmp_path / "s.db"
    _, first = run(project, db, project.load())
    run(project, db, project.load(main=MAIN.replace("2 * x", "3 * x")))
    storage, back = run(project, db, project.load())
    assert project.runs == ["work", "work"]
    assert back.hid == first.hid
    assert len(storage.versions("work", show=False)) == 2


def test_mark_compatible_keeps_the_earlier_results(project, tmp_path):
    db = tmp_path / "s.db"
    _, first = run(project, db, project.load())
    edited = MAIN.replace("return 2 * x + helpers.offset(x)", "y = 2 * x\n    return y + helpers.offset(x)")
    storage, second = run(project, db, project.load(main=edited))
    assert second.hid != first.hid
    marked = storage.mark_compatible("work")
    assert marked == ["op work"]
    module = project.load(main=edited)
    with Storage(db, deps_path=project.root) as storage:
        third = module.work(1)
        fourth = module.work(2)
    assert third.hid == first.hid, "the earlier result is reused"
    assert project.runs == ["work", "work", "work"], "only the new argument runs"
    assert storage.unwrap(fourth) == 5


def test_drop_version_removes_its_calls(project, tmp_path):
    db = tmp_path / "s.db"
    run(project, db, project.load())
    storage, _ = run(project, db, project.load(main=MAIN.replace("2 * x", "3 * x")))
    assert storage.drop_version("work", 1) == 1
    assert [v["number"] for v in storage.versions("work", show=False)] == [1]
    with Storage(db, deps_path=project.root):
        project.load().work(1)
    assert project.runs == ["work", "work", "work"], "the dropped version's call runs again"


def test_on_code_change_error_holds_the_op_until_decided(project, tmp_path):
    db = tmp_path / "s.db"
    run(project, db, project.load())
    module = project.load(main=MAIN.replace("2 * x", "3 * x"))
    with pytest.raises(Exception, match="code changed"):
        with Storage(db, deps_path=project.root, on_code_change="error"):
            module.work(1)
    storage = Storage(db, deps_path=project.root, on_code_change="error")
    storage.sync_component("work", is_semantic_change=True)
    with storage:
        assert storage.unwrap(module.work(1)) == 4


def test_an_explicit_version_overrides_code_versions(project, tmp_path):
    db = tmp_path / "s.db"
    versioned = MAIN.replace("@op\ndef work", "@op(version=3)\ndef work")
    _, first = run(project, db, project.load(main=versioned))
    storage, second = run(project, db, project.load(main=versioned.replace("2 * x", "3 * x")))
    assert second.hid == first.hid and project.runs == ["work"]
    assert storage.versions("work", show=False) == []
    assert storage.get_ref_creator(second).version == 3


def test_without_deps_path_ops_are_not_code_versioned(project, tmp_path):
    db = tmp_path / "s.db"
    with Storage(db) as storage:
        first = project.load().work(1)
    with Storage(db) as storage:
        second = project.load(main=MAIN.replace("2 * x", "3 * x")).work(1)
    assert second.hid == first.hid and project.runs == ["work"]
    assert not storage.versioned and storage.versions("work", show=False) == []


def test_unstorable_globals_count_by_type_and_classes_by_source(project, tmp_path):
    source = MAIN + textwrap.dedent(
        '''
        class Scaler:
            def __init__(self, k):
                self.k = k

            def apply(self, x):
                return helpers.offset(x) * self.k

        MODEL = object()

        @op
        def scaled(x):
            record("scaled")
            return Scaler(2).apply(x) + (MODEL is not None)
        '''
    )
    db = tmp_path / "s.db"
    with Storage(db, deps_path=project.root) as storage:
        project.load(main=source).scaled(1)
    names = {c["name"] for c in storage.versions("scaled", show=False)[0]["components"]}
    assert names == {"op scaled", "class pipeline.Scaler", "global pipeline.MODEL", "helpers.offset"}
    with Storage(db, deps_path=project.root):
        project.load(main=source).scaled(1)  # a new object() each import: the same version
    with Storage(db, deps_path=project.root):
        project.load(main=source.replace("self.k = k", "self.k = k + 1")).scaled(1)
    assert project.runs == ["scaled", "scaled"]


def test_deps_path_main_tracks_the_op_itself(project, tmp_path):
    db = tmp_path / "s.db"
    with Storage(db, deps_path="__main__") as storage:
        project.load().work(1)
    # The op's module is not __main__: only the op's own code is a component.
    assert {c["name"] for c in storage.versions("work", show=False)[0]["components"]} == {"op work"}
    with Storage(db, deps_path="__main__"):
        project.load(helpers=HELPERS.replace("return 1", "return 2")).work(1)
    assert project.runs == ["work"]


def test_ops_called_inside_a_versioned_op(project, tmp_path):
    source = MAIN + textwrap.dedent(
        """
        @op
        def outer(x):
            record("outer")
            return unwrap(work(x)) + 1
        """
    )
    db = tmp_path / "s.db"

    def call(module):
        with Storage(db, deps_path=project.root) as storage:
            module.unwrap = storage.unwrap
            return storage.unwrap(module.outer(1))

    assert call(project.load(main=source)) == 4
    assert call(project.load(main=source)) == 4
    assert project.runs == ["outer", "work"]
    assert call(project.load(main=source.replace("2 * x", "3 * x"))) == 5
    assert project.runs == ["outer", "work", "outer", "work"], "the inner op's code is part of the outer's"
    storage = Storage(db)
    names = {c["name"] for c in storage.versions("outer", show=False)[0]["components"]}
    assert names == {"op outer", "op work", "helpers.offset"}


def test_threads_started_inside_the_context_use_its_versions(project, tmp_path):
    import threading

    module = project.load()
    results = {}
    with Storage(tmp_path / "s.db", deps_path=project.root) as storage:
        threads = [threading.Thread(target=lambda i=i: results.update({i: module.work(i % 2)})) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert {storage.unwrap(r) for r in results.values()} == {1, 3}
    assert len(storage.versions("work", show=False)) == 1
    assert 2 <= len(project.runs) <= 8
    module = project.load(main=MAIN.replace("2 * x", "3 * x"))
    results.clear()
    with Storage(tmp_path / "s.db", deps_path=project.root) as storage:
        threads = [threading.Thread(target=lambda i=i: results.update({i: module.work(i % 2)})) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert {storage.unwrap(r) for r in results.values()} == {1, 4}
    assert len(storage.versions("work", show=False)) == 2


def test_a_wrapped_global_counts_by_its_content_id(project, tmp_path):
    source = (
        "from mandala.imports import wrap_atom\n"
        + MAIN
        + textwrap.dedent(
            """
            DATA = wrap_atom([1, 2, 3])

            @op
            def uses_data(x):
                record("uses_data")
                return x + sum(DATA.obj)
            """
        )
    )
    db = tmp_path / "s.db"
    with Storage(db, deps_path=project.root) as storage:
        assert storage.unwrap(project.load(main=source).uses_data(1)) == 7
    component = {c["name"]: c for c in storage.versions("uses_data", show=False)[0]["components"]}["global pipeline.DATA"]
    assert component["content"] == project.load(main=source).DATA.cid
    with Storage(db, deps_path=project.root):
        project.load(main=source).uses_data(1)
    with Storage(db, deps_path=project.root) as storage:
        assert storage.unwrap(project.load(main=source.replace("[1, 2, 3]", "[1, 2, 4]")).uses_data(1)) == 8
    assert project.runs == ["uses_data", "uses_data"]


def test_track_globals_and_unhashable_globals_options(project, tmp_path):
    source = MAIN + "\nimport threading\nMODEL = threading.Lock()\n\n@op\ndef reads_model(x):\n    return x if MODEL else 0\n"
    db = tmp_path / "s.db"
    module = project.load(main=source)
    with Storage(db, deps_path=project.root, track_globals=False) as storage:
        module.other(1)
    assert {c["name"] for c in storage.versions("other", show=False)[0]["components"]} == {"op other"}
    with pytest.raises(RuntimeError, match="MODEL.*cannot hash"):
        with Storage(tmp_path / "t.db", deps_path=project.root, skip_unhashable_globals=False):
            module.reads_model(1)
