"""`graphc cache info` and `graphc cache clear` against the cache folder as the file system
shows it (os.walk), never against graphc's own count."""
import os

import numpy as np

import graphc as gc
from graphc.cli.main import main
from graphc.runtime import cache_dir


def _compile_two(dims=(2, 3)):
    for n in dims:
        b = gc.Builder(f"g{n}")
        x = b.input("x", (n,))
        gc.compile(b.output(y=gc.tanh(x) * 2.0), backend="python")(x=np.ones(n))


def _walk(root):
    """{relative path: size} of every file under root."""
    return {os.path.relpath(os.path.join(d, f), root): os.path.getsize(os.path.join(d, f))
            for d, _, files in os.walk(root) for f in files}


def _plant(root):
    """Files graphc did not write, and fake numba cache files that it did."""
    (root / "notes.txt").write_text("mine")
    (root / "numba" / "__pycache__").mkdir(parents=True)
    (root / "numba" / "__pycache__" / "graphc_0123.k0-1.py311.nbi").write_bytes(b"i" * 100)
    (root / "numba" / "__pycache__" / "graphc_0123.k0-1.py311.1.nbc").write_bytes(b"c" * 900)
    (root / "numba" / "graphc_0123.py").write_text("x = 1\n")
    (root / "numba" / "keep.py").write_text("not graphc's\n")


def test_info_counts_what_is_on_disk(capsys):
    _compile_two()
    root = cache_dir()
    _plant(root)
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    files = _walk(root)
    python = {p: s for p, s in files.items() if p.startswith("python" + os.sep) and "graphc_" in p}
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert int(rows["python"][0]) == sum(1 for p in python if p.endswith(".py"))
    assert rows["numba"][:2] == ["1", "2"]  # keep.py and notes.txt are not graphc's
    assert str(root) in out.splitlines()[0]


def test_clear_deletes_only_graphc_files_and_the_cache_rebuilds(capsys):
    _compile_two()
    root = cache_dir()
    _plant(root)
    before = _walk(root)
    ours = {p: s for p, s in before.items() if os.path.basename(p).startswith("graphc_")}
    assert main(["cache", "clear"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"removed {len(ours)} files ")
    assert set(_walk(root)) == set(before) - set(ours) == {"notes.txt", os.path.join("numba", "keep.py")}
    _compile_two()  # a cleared cache is rebuilt on demand
    assert any(p.startswith("python") for p in _walk(root))


def test_clear_one_backend_leaves_the_others(capsys):
    _compile_two()
    root = cache_dir()
    _plant(root)
    assert main(["cache", "clear", "--backend", "numba"]) == 0
    left = _walk(root)
    assert not any(p.startswith("numba") and "graphc_" in p for p in left)
    assert any(p.startswith("python") and "graphc_" in p for p in left)


def test_info_on_an_empty_or_missing_cache(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "never_made"))
    assert main(["cache", "info"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "empty"
    assert main(["cache", "clear"]) == 0
    assert "removed 0 files" in capsys.readouterr().out


def test_an_unknown_backend_is_a_usage_error(capsys):
    import pytest
    with pytest.raises(SystemExit) as exit_:
        main(["cache", "clear", "--backend", "nosuch"])
    assert exit_.value.code == 2 and "invalid choice: 'nosuch'" in capsys.readouterr().err


def test_clear_never_follows_a_link_out_of_the_cache(capsys, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "__pycache__").mkdir(parents=True)
    precious = [elsewhere / "graphc_precious.py", elsewhere / "__pycache__" / "graphc_precious.k.nbi"]
    for p in precious:
        p.write_text("not the cache's")
    root = cache_dir()
    (root / "python").mkdir(parents=True, exist_ok=True)
    (root / "numba").symlink_to(elsewhere)  # a backend folder that is a link
    (root / "python" / "__pycache__").symlink_to(elsewhere / "__pycache__")  # a __pycache__ that is a link
    assert main(["cache", "clear"]) == 0
    assert all(p.exists() for p in precious)
    assert main(["cache", "info"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "empty"
