"""Graph files are data: the hostile corpus under tests/hostile/ (make_corpus.py writes it).

Every refused file goes through `graphc render`, `graphc emit` and `graphc check` and
through graphfile.load (+ gc.compile + a call, had it loaded).  Each CLI run must exit
2 with exactly one stderr line that names what is wrong, create no file outside -o
(the payloads try to write PWNED into the cwd), and finish within the time limit.
The three commands run in one process each (tests/hostile/drive_cli.py); a few real
subprocess runs prove the console path too.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.io import graphfile as graphfile
from graphc.errors import GraphcError

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ROOT / "tests" / "hostile"
EXPECTED = json.loads((HOSTILE / "expected.json").read_text())
REFUSED = sorted(EXPECTED)
ACCEPTED = sorted(p.name for p in (HOSTILE / "accepted").iterdir())
LIMIT_S = 20  # per file; the refusals take milliseconds


def test_the_corpus_is_complete_and_current():
    """The committed files are what make_corpus.py writes, and there are at least 40."""
    assert sorted(p.name for p in (HOSTILE / "refused").iterdir()) == REFUSED
    assert len(REFUSED) >= 40
    from tests.hostile import make_corpus
    base = graphfile.to_data(make_corpus.base_graph())
    for name, (make, _) in make_corpus.REFUSED.items():
        assert (HOSTILE / "refused" / name).read_bytes() == make(base), f"{name}: rerun make_corpus.py"


def drive(command, files, tmp_path, *extra):
    """Run drive_cli.py for `command` over `files` with cwd = an empty folder."""
    cwd, out = tmp_path / "cwd", tmp_path / "cwd" / "out"
    out.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRAPHC_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, str(HOSTILE / "drive_cli.py"), command, str(out), *map(str, files),
                        "--", *extra], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=LIMIT_S * len(files) + 60)
    assert r.returncode == 0, r.stderr[-3000:]
    return {res["file"]: res for res in json.loads(r.stdout)}, cwd


@pytest.fixture(scope="module", params=["render", "emit", "check"])
def cli_results(request, tmp_path_factory):
    files = [HOSTILE / "refused" / name for name in REFUSED]
    results, cwd = drive(request.param, files, tmp_path_factory.mktemp(request.param))
    return request.param, results, cwd


def test_every_refusal_is_exit_2_one_line_no_files_in_time(cli_results):
    command, results, cwd = cli_results
    bad = []
    for name in REFUSED:
        res = results[name]
        lines = res["stderr"].splitlines()
        why = []
        if res["code"] != 2:
            why.append(f"exit {res['code']!r}")
        if len(lines) != 1 or not res["stderr"].endswith("\n"):
            why.append(f"{len(lines)} stderr lines")
        elif not lines[0].startswith(f"graphc {command}: error: ") or EXPECTED[name] not in lines[0]:
            why.append(f"message lacks {EXPECTED[name]!r}")
        if any(not c.isprintable() for c in res["stderr"].rstrip("\n")):
            why.append("control characters on stderr")
        if "Traceback" in res["stderr"]:
            why.append("traceback")
        if res["created"]:
            why.append(f"created {res['created']}")
        if res["seconds"] > LIMIT_S:
            why.append(f"took {res['seconds']} s")
        if why:
            bad.append(f"{name}: {', '.join(why)}: {res['stderr'][:300]!r}")
    assert not bad, "\n".join(bad)
    assert not (cwd / "PWNED").exists() and list(cwd.iterdir()) == [cwd / "out"]
    assert list((cwd / "out").iterdir()) == []  # nothing rendered for a refused file


@pytest.mark.parametrize("name", REFUSED)
def test_load_refuses_with_one_line_naming_the_file_and_the_fault(name, tmp_path, monkeypatch):
    tmp_path = tmp_path / "cwd"  # the cache lives beside it (conftest)
    tmp_path.mkdir()
    monkeypatch.chdir(tmp_path)
    path = HOSTILE / "refused" / name
    with pytest.raises(GraphcError) as e:
        graph = graphfile.load(path)
        gc.compile(graph)(**feeds_for(graph))  # not reached: had it loaded, it must still be harmless
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path)) and EXPECTED[name] in message, message
    assert list(tmp_path.iterdir()) == []


def feeds_for(graph, n=4):
    """Inputs for the corpus's base graph (x: (N, 3), y: labels (N,), W: (3, 3), k: scalar)."""
    rng = np.random.default_rng(0)
    values = {"x": rng.standard_normal((n, 3)), "y": np.array([0, 2, 1, 2]), "W": rng.standard_normal((3, 3)),
              "k": np.float64(1.0)}
    return {graph.name_of(v): values[graph.name_of(v)] for v in graph.nodes_with_op("input", "param")}


def reference_loss(feeds):
    """The base graph's loss, by hand in NumPy (tests/hostile/make_corpus.py builds it)."""
    z = feeds["x"] @ feeds["W"]
    h = np.where(z > 0, z, 0.1 * z)
    p = np.exp(h - h.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return h.sum() * 0.5 + (p * np.eye(3)[feeds["y"]]).sum()


@pytest.mark.parametrize("name", ACCEPTED)
def test_near_misses_load_compile_and_run(name, tmp_path, monkeypatch):
    """An upper-case .JSON suffix, a `<lambda>` or dashed name: data, and fine."""
    tmp_path = tmp_path / "cwd"  # the cache lives beside it (conftest)
    tmp_path.mkdir()
    monkeypatch.chdir(tmp_path)
    graph = graphfile.load(HOSTILE / "accepted" / name)
    feeds = feeds_for(graph)
    out = gc.compile(graph)(**feeds)
    assert np.isclose(float(out["loss"]), reference_loss(feeds), rtol=1e-12)
    assert list(tmp_path.iterdir()) == []


def test_near_misses_through_the_cli(tmp_path):
    files = [HOSTILE / "accepted" / name for name in ACCEPTED]
    for command in ("emit", "render"):
        results, cwd = drive(command, files, tmp_path / command)
        for name in ACCEPTED:
            assert results[name]["code"] == 0 and results[name]["created"] == [], (command, results[name])
    assert len(list((tmp_path / "render" / "cwd" / "out").iterdir())) == len(ACCEPTED)


def test_exact_evaluation_that_would_not_finish_is_refused(tmp_path):
    """pow_bomb.json is a valid graph (floats: 9.0 ** 9.0); its exact values would be
    numbers of ~10**100 digits.  `render --exact` refuses, naming the limit."""
    path = HOSTILE / "exact" / "pow_bomb.json"
    exact, cwd = drive("render", [path], tmp_path / "exact", "--exact", "--feed", "k=1")
    res = exact["pow_bomb.json"]
    assert res["code"] == 2 and res["stderr"].count("\n") == 1 and res["seconds"] < LIMIT_S, res
    assert "node 'bomb' (pow): exact value would have more than 2000 digits (the limit of --exact)" in res["stderr"]
    floats, _ = drive("emit", [path], tmp_path / "float")
    assert floats["pow_bomb.json"]["code"] == 0, floats


@pytest.mark.parametrize("name, args", [
    ("graph_name_docstring.json", ["emit"]),
    ("model.py", ["render", "-o", "out.svg"]),
])
def test_the_console_script_refuses_too(name, args, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRAPHC_CACHE_DIR=str(tmp_path / "cache"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    cmd = [sys.executable, "-m", "graphc", args[0], str(HOSTILE / "refused" / name), *args[1:]]
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=LIMIT_S)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and EXPECTED[name] in r.stderr, r.stderr
    assert r.stdout == "" and list(cwd.iterdir()) == []
