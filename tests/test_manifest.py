"""The source digest recorded in every manifest: it follows behaviour, not wording."""

import json

import pytest

from sleuth import manifest
from sleuth.manifest import environment, source_digest


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A two-module package standing in for sleuth's own source."""
    (tmp_path / "sub").mkdir()  # the package's own files; the cache lives under cache/
    (tmp_path / "a.py").write_text(
        '"""Module A."""\n\n\ndef f(x):\n    """Twice x."""\n    return 2 * x\n'
    )
    (tmp_path / "sub" / "b.py").write_text("class B:\n    '''A B.'''\n\n    n = 1\n")
    monkeypatch.setattr(manifest, "PACKAGE_DIR", tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source_digest.cache_clear()
    yield tmp_path
    source_digest.cache_clear()


def _digest(*exclude: str) -> str:
    source_digest.cache_clear()
    return source_digest(tuple(exclude))


def test_docstrings_comments_and_layout_leave_the_digest_unchanged(package):
    before = _digest()
    (package / "a.py").write_text(
        '"""Another wording."""\n# a comment\ndef f( x ):\n'
        '    """Other."""\n    return 2*x  # why\n'
    )
    (package / "sub" / "b.py").write_text("class B:\n    n = 1\n")
    assert _digest() == before


def test_a_change_of_behaviour_changes_the_digest_unless_excluded(package):
    before, without_b = _digest(), _digest("sub/")
    (package / "sub" / "b.py").write_text("class B:\n    n = 2\n")
    assert _digest() != before
    assert _digest("sub/") == without_b
    (package / "a.py").write_text("def f(x):\n    return 3 * x\n")
    assert _digest("sub/") != without_b
    (package / "c.py").write_text("")  # a new module counts too
    assert len({_digest(), before}) == 2


def test_environment_names_the_source():
    source_digest.cache_clear()
    env = environment()
    assert env["sleuth_source"] == source_digest()[:16] and len(env["sleuth_source"]) == 16


def test_the_cache_of_parsed_modules_changes_no_digest(package):
    """Each module's tree digest is cached between processes by the SHA-256 of its bytes: a
    digest computed from the cache equals one computed cold, a changed module is parsed again,
    and a cache that is corrupt, from another Python or cannot be written is ignored."""
    cache = package / "cache" / "sleuth" / "source-trees.json"
    cold = _digest()
    assert cache.is_file() and len(json.loads(cache.read_text())["trees"]) == 2
    assert _digest() == cold  # from the cache
    (package / "a.py").write_text("def f(x):\n    return 3 * x\n")
    changed = _digest()
    assert changed != cold and len(json.loads(cache.read_text())["trees"]) == 3
    for bad in ("{not json", json.dumps({"python": "2.7", "trees": {}}), "[]"):
        cache.write_text(bad)
        assert _digest() == changed
    cache.unlink()
    (package / "cache" / "sleuth").rmdir()
    (package / "cache" / "sleuth").write_text("a file where the folder should be")
    assert _digest() == changed
