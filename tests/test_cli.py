"""The `graphc` command line: in a subprocess, as a user runs it, and in process for the quick cases."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LECTURE = ROOT / "examples" / "lecture_graph.py"


def graphc(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "graphc.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def run_main(*args):
    """In process (fast): the exit code, as argparse's SystemExit or main's return value."""
    from graphc.cli import main
    try:
        return main(list(args))
    except SystemExit as e:
        return e.code


def test_ops_lists_the_op_table():
    from graphc.ops import table
    r = graphc("ops")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["op", "arity", "kind", "doc"]
    listed = {line.split()[0] for line in lines[1:]}
    assert listed == {op.name for op in table()}
    add = next(line for line in lines if line.split()[0] == "add")
    assert add.split()[1:3] == ["2", "elementwise"]


def test_ops_filters_by_kind(capsys):
    assert run_main("ops", "--kind", "reduce") == 0
    assert {line.split()[2] for line in capsys.readouterr().out.splitlines()[1:]} == {"reduce"}


def test_emit_grad_of_the_lecture_graph_is_runnable_source(tmp_path):
    r = graphc("emit", str(LECTURE), "--grad")
    assert r.returncode == 0, r.stderr
    src = r.stdout
    assert "def run(x1, x2, x3, x4):" in src
    assert "a = x1 + x2" in src and "g_x3" in src
    namespace = {}
    exec(compile(src, "emitted.py", "exec"), namespace)  # noqa: S102 - our own emitted code
    out = namespace["run"](5.0, 4.0, 3.0, 2.0)
    assert [float(out[k]) for k in ("f", "g_x1", "g_x2", "g_x3", "g_x4")] == [25.0, 3.0, 3.0, 9.0, -1.0]


def test_emit_without_grad_has_no_backward_section(capsys):
    assert run_main("emit", str(LECTURE)) == 0
    out = capsys.readouterr().out
    assert "# ---- forward ----" in out and "backward" not in out


def test_emit_missing_file_is_a_usage_error(tmp_path):
    r = graphc("emit", str(tmp_path / "no_such_model.py"))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "no such file" in r.stderr
    assert "Traceback" not in r.stderr


def test_emit_file_without_a_graph_is_a_usage_error(tmp_path, capsys):
    model = tmp_path / "empty_model.py"
    model.write_text("x = 1\n")
    assert run_main("emit", str(model)) == 2
    assert "neither" in capsys.readouterr().err


def test_emit_model_that_raises_reports_one_line(tmp_path):
    model = tmp_path / "bad_model.py"
    model.write_text("def build():\n    raise ValueError('boom')\n")
    r = graphc("emit", str(model))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "boom" in r.stderr
    r = graphc("emit", str(model), "--debug")
    assert "Traceback" in r.stderr


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["emit"], ["emit", "m.py", "--backend", "nope"]])
def test_bad_usage_exits_2(args, capsys):
    assert run_main(*args) == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["ops", "emit", "verify"])
def test_help_has_examples(cmd, capsys):
    assert run_main(cmd, "--help") == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"graphc {cmd}" in out


def test_emit_help_warns_that_it_runs_the_file(capsys):
    run_main("emit", "--help")
    assert "RUNS the file" in capsys.readouterr().out


def test_main_is_callable_in_process(capsys):
    from graphc.cli import main
    assert main(["ops", "--kind", "leaf"]) == 0
    assert "param" in capsys.readouterr().out


def test_verify_one_op():
    pytest.importorskip("graphc.verify")
    r = graphc("verify", "tanh")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok") and "1 ok, 0 failed" in r.stdout


def test_verify_unknown_op_is_a_usage_error(capsys):
    assert run_main("verify", "no_such_op") == 2
    err = capsys.readouterr().err
    assert "unknown op" in err and err.count("\n") == 1


def test_verify_failed_proof_exits_1(monkeypatch, capsys):
    verify = pytest.importorskip("graphc.verify")
    failing = verify.ProofResult("tanh", False, "g_x0[]: graph gives 3*v*x0, J^T v is 2*v*x0", status="failed")
    monkeypatch.setattr(verify, "prove_op", lambda name: failing)
    assert run_main("verify", "tanh") == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL tanh") and "0 ok, 1 failed: tanh" in out
