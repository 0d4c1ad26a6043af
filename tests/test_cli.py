"""The `graphc` command line: in a subprocess, as a user runs it, and in process for the quick cases."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LECTURE = ROOT / "examples" / "lecture_graph.py"


def graphc(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "graphc", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def run_main(*args):
    """In process (fast): the exit code, as argparse's SystemExit or main's return value."""
    from graphc.cli.main import main
    try:
        return main(list(args))
    except SystemExit as e:
        return e.code


def test_ops_lists_the_op_table():
    from graphc.ir.ops import table
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
    r = graphc("emit", "--python", str(LECTURE), "--grad")
    assert r.returncode == 0, r.stderr
    src = r.stdout
    assert "def run(x1, x2, x3, x4):" in src
    assert "a = x1 + x2" in src and "g_x3" in src
    namespace = {}
    exec(compile(src, "emitted.py", "exec"), namespace)  # noqa: S102 - our own emitted code
    out = namespace["run"](5.0, 4.0, 3.0, 2.0)
    assert [float(out[k]) for k in ("f", "g_x1", "g_x2", "g_x3", "g_x4")] == [25.0, 3.0, 3.0, 9.0, -1.0]


def test_emit_without_grad_has_no_backward_section(capsys):
    assert run_main("emit", "--python", str(LECTURE)) == 0
    out = capsys.readouterr().out
    assert "# ---- forward ----" in out and "backward" not in out


def test_emit_missing_file_is_a_usage_error(tmp_path):
    r = graphc("emit", "--python", str(tmp_path / "no_such_model.py"))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "no such file" in r.stderr
    assert "Traceback" not in r.stderr


def test_emit_file_without_a_graph_is_a_usage_error(tmp_path, capsys):
    model = tmp_path / "empty_model.py"
    model.write_text("x = 1\n")
    assert run_main("emit", "--python", str(model)) == 2
    assert "neither" in capsys.readouterr().err


def test_emit_model_that_raises_reports_one_line(tmp_path):
    model = tmp_path / "bad_model.py"
    model.write_text("def build():\n    raise ValueError('boom')\n")
    r = graphc("emit", "--python", str(model))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "boom" in r.stderr
    r = graphc("emit", "--python", str(model), "--debug")
    assert "Traceback" in r.stderr


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["emit"], ["emit", "m.py", "--backend", "nope"]])
def test_bad_usage_exits_2(args, capsys):
    assert run_main(*args) == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["ops", "emit", "verify", "render", "check", "save"])
def test_help_has_examples(cmd, capsys):
    assert run_main(cmd, "--help") == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"graphc {cmd}" in out


def test_emit_help_warns_that_it_runs_the_file(capsys):
    run_main("emit", "--help")
    assert "RUNS the file" in capsys.readouterr().out


def test_main_is_callable_in_process(capsys):
    from graphc.cli.main import main
    assert main(["ops", "--kind", "leaf"]) == 0
    assert "param" in capsys.readouterr().out


def test_verify_one_op():
    pytest.importorskip("graphc.check.verify")
    r = graphc("verify", "tanh")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok") and "1 ok, 0 failed" in r.stdout


def test_verify_unknown_op_is_a_usage_error(capsys):
    assert run_main("verify", "no_such_op") == 2
    err = capsys.readouterr().err
    assert "unknown op" in err and err.count("\n") == 1


def test_verify_failed_proof_exits_1(monkeypatch, capsys):
    verify = pytest.importorskip("graphc.check.verify")
    failing = verify.ProofResult("tanh", False, "g_x0[]: graph gives 3*v*x0, J^T v is 2*v*x0", status="failed")
    monkeypatch.setattr(verify, "prove_op", lambda name: failing)
    assert run_main("verify", "tanh") == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL tanh") and "0 ok, 1 failed: tanh" in out


# ----- render, check, save (issue 4) ------------------------------------------------------
BAD_DERIVATIVE = """
import numpy as np
import graphc as gc
from graphc.frontend.dsl import apply
from graphc.ir.ops.elementwise import elementwise

# x*x with a wrong derivative (3x, not 2x): `graphc check` must catch it.
elementwise("bad_square", 1, np.square, lambda a: a * a, lambda c, i: 3.0 * c.x[0], "x*x, wrong derivative")


def build():
    b = gc.Builder("bad")
    x = b.input("x", (3,))
    return b.output(loss=gc.sum(apply("bad_square", x)))
"""


@pytest.mark.parametrize("cmd", ["render", "check", "save", "emit"])
def test_help_says_a_py_model_is_run_and_json_is_only_read(cmd, capsys):
    run_main(cmd, "--help")
    out = capsys.readouterr().out
    assert "RUN" in out and "never run" in out


def test_render_lecture_svg_through_the_cli(tmp_path):
    out = tmp_path / "lecture.svg"
    r = graphc("render", "--python", str(LECTURE), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote {out}") and r.stderr == ""  # FEEDS in the model: no random inputs
    from tests.test_render import check_lecture, parse_svg
    check_lecture(*parse_svg(out.read_text()))


def test_render_png_and_options(tmp_path):
    out = tmp_path / "g.png"
    r = graphc("render", "--python", str(LECTURE), "-o", str(out), "--backward-graph", "--rankdir", "TB")
    assert r.returncode == 0, r.stderr
    import struct
    width, height = struct.unpack(">II", out.read_bytes()[16:24])
    assert out.read_bytes()[:4] == b"\x89PNG" and 200 < width < 4000 and 200 < height < 4000


def test_render_default_output_name(tmp_path):
    r = graphc("render", "--python", str(LECTURE), "--forward-only", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "lecture_graph.svg").exists()
    assert "grad" not in (tmp_path / "lecture_graph.svg").read_text()


def test_render_trace_and_markdown(capsys):
    assert run_main("render", "--python", str(LECTURE), "--trace") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split() == ["1", "f", "=", "b", "-", "x4", "x4", "->", "f", "2", "1", "-1", "-1"]
    assert run_main("render", "--python", str(LECTURE), "--trace", "--markdown") == 0
    assert "| 3 | b = a * x3 | x3 -> b | 3 | 1 | 9 | 9 |" in capsys.readouterr().out


def test_render_exact_feeds(capsys):
    assert run_main("render", "--python", str(LECTURE), "--trace", "--exact", "--feed", "x1=1/3", "--feed", "x2=0.1") == 0
    out = capsys.readouterr().out
    assert "df/dx3 = 13/30" in out  # a = 1/3 + 1/10, exactly


def test_render_random_defaults_are_announced(tmp_path):
    model = tmp_path / "deep_model.py"
    model.write_text("import sys\nsys.path.insert(0, %r)\nfrom tests.models import deep_mlp\n"
                     "def build():\n    return deep_mlp(depth=3)\n" % str(ROOT))
    r = graphc("render", "--python", str(model), "-o", str(tmp_path / "d.dot"), "--collapse", "--dim", "N=5")
    assert r.returncode == 0, r.stderr
    assert "random values (seed 0) for x, layer1.W" in r.stderr and "N=" not in r.stderr
    assert "layer1 … layer3  ×3" in (tmp_path / "d.dot").read_text()
    assert "float64 (5, 6)" in (tmp_path / "d.dot").read_text()
    r = graphc("render", "--python", str(model), "-o", str(tmp_path / "d.dot"))
    assert "with N=4 (set with --dim)" in r.stderr


def test_render_saved_json_reads_without_running_code(tmp_path):
    saved = tmp_path / "lecture.json"
    r = graphc("save", "--python", str(LECTURE), "--grad", "-o", str(saved))
    assert r.returncode == 0 and "wrote" in r.stdout, r.stderr
    r = graphc("render", str(saved), "--trace", *[f"--feed=x{i}={v}" for i, v in zip(range(1, 5), (5, 4, 3, 2))])
    assert r.returncode == 0, r.stderr
    assert "df/dx4 = -1" in r.stdout
    trap = tmp_path / "trap.json"
    trap.write_text("import pathlib; pathlib.Path(%r).touch()\n" % str(tmp_path / "ran"))
    r = graphc("render", str(trap))
    assert r.returncode == 2 and "is not valid JSON" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "ran").exists()


def test_render_malformed_json_is_one_line(tmp_path):
    bad = tmp_path / "cyclic.json"
    from graphc.io.graphfile import to_data
    from tests.conftest import lecture_graph
    import json
    data = to_data(lecture_graph())
    data["edges"] = [e for e in data["edges"] if (e["target"], e["pos"]) != (4, 1)]
    data["edges"].append({"source": 6, "target": 4, "pos": 1})
    bad.write_text(json.dumps(data))
    r = graphc("render", str(bad))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "GraphCycleError" in r.stderr and "a -> b -> f -> a" in r.stderr


def test_render_without_graphviz_writes_dot(tmp_path):
    import os
    env = dict(os.environ, GRAPHC_LAYOUT="none")
    r = subprocess.run([sys.executable, "-m", "graphc", "render", "--python", str(LECTURE), "-o", str(tmp_path / "g.svg")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "wrote" in r.stderr and "pip install" in r.stderr
    assert (tmp_path / "g.dot").read_text().startswith("digraph")


@pytest.mark.parametrize("args, message", [
    (["--feed", "x9=1"], "no input or param named x9"),
    (["--feed", "x1"], "--feed must look like NAME=VALUE"),
    (["--feed", "x1=abc"], "'abc' is not a number"),
    (["--feed", "x1=[1, 2]"], "expected rank 0"),
    (["--dim", "N=four"], "size must be a whole number"),
    (["-o", "out.gif"], "format 'gif'"),
    (["--feeds", "missing.npz"], "cannot read feeds from missing.npz"),
])
def test_render_input_errors_exit_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_main("render", "--python", str(LECTURE), *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_render_feeds_from_npz(tmp_path, capsys):
    import numpy as np
    np.savez(tmp_path / "point.npz", x1=np.float64(1), x2=np.float64(1), x3=np.float64(10), x4=np.float64(0))
    assert run_main("render", "--python", str(LECTURE), "--feeds", str(tmp_path / "point.npz"), "--trace") == 0
    assert "df/dx3 = 2" in capsys.readouterr().out


def test_check_passes_on_the_lecture_and_spiral_models():
    r = graphc("check", "--python", str(LECTURE))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "ok: gradients of 'f' match central differences"
    assert len(r.stdout.splitlines()) == 6  # header, 4 projections, verdict
    r = graphc("check", "--python", str(ROOT / "examples" / "spiral_gradients.py"), "--dim", "N=5", "--projections", "2")
    assert r.returncode == 0, r.stderr


def test_check_fails_on_a_wrong_derivative(tmp_path):
    model = tmp_path / "bad_model.py"
    model.write_text(BAD_DERIVATIVE)
    r = graphc("check", "--python", str(model), "--feed", "x=[1, 2, 3]")
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines()[-1].startswith("FAIL: gradients of 'loss' differ")


def test_save_roundtrip_and_emit_from_json(tmp_path, capsys):
    saved = tmp_path / "lecture.json"
    assert run_main("save", "--python", str(LECTURE), "-o", str(saved)) == 0
    assert capsys.readouterr().out == f"wrote {saved} (7 nodes)\n"
    assert run_main("emit", str(saved), "--grad") == 0
    emitted_from_json = capsys.readouterr().out
    assert run_main("emit", "--python", str(LECTURE), "--grad") == 0
    assert capsys.readouterr().out == emitted_from_json


def test_emit_backend_choices_come_from_backends():
    from graphc.cli.main import BACKENDS, make_parser
    parser = make_parser()
    emit = parser._subparsers._group_actions[0].choices["emit"]
    backend = next(a for a in emit._actions if a.dest == "backend")
    assert sorted(backend.choices) == sorted(BACKENDS)


def test_render_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert run_main("render", str(bad)) == 2
    with pytest.raises(Exception, match="ends too early"):
        run_main("render", str(bad), "--debug")


# ----- a Python model runs only when asked (issue 13) ----------------------------------------
CANARY_MODEL = "import pathlib\npathlib.Path(%r).touch()\n"


@pytest.mark.parametrize("name", ["model.py", "MODEL.PY"])
@pytest.mark.parametrize("cmd", ["emit", "render", "check", "save"])
def test_a_py_model_without_python_is_refused_and_not_run(cmd, name, tmp_path, capsys):
    model = tmp_path / name
    model.write_text(CANARY_MODEL % str(tmp_path / "ran"))
    extra = ["-o", str(tmp_path / "out.json")] if cmd == "save" else []
    assert run_main(cmd, str(model), *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--python" in err and "Python file" in err, err
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("name", ["model.graph", "g.json.txt", "weights.npz", "model", "model.pyc"])
def test_python_flag_runs_only_py_files(name, tmp_path, capsys):
    model = tmp_path / name
    model.write_text(CANARY_MODEL % str(tmp_path / "ran"))
    assert run_main("emit", "--python", str(model)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not one" in err, err
    assert not (tmp_path / "ran").exists()


def test_upper_case_json_suffix_is_read_as_a_graph_file(tmp_path, capsys):
    saved = tmp_path / "GRAPH.JSON"
    assert run_main("save", "--python", str(LECTURE), "-o", str(saved)) == 0
    assert run_main("emit", str(saved)) == 0
    assert "def run(x1, x2, x3, x4):" in capsys.readouterr().out


def test_error_lines_show_control_characters_escaped(tmp_path, capsys):
    assert run_main("emit", str(tmp_path / "a\x1b[31mred\nline.json")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\\x1b[31mred" in err, err
