"""The graphc.train examples: each runs as a script (as a user would run it) and
its printed results are checked -- accuracies against the thresholds the
examples assert, the lecture's claims (zero-init symmetry, momentum beating
plain SGD, a tiny batch memorized) -- and its plots must be real PNG images.

test_examples.py runs every other example; these ones run only here.
"""
import ast
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TRAINING_EXAMPLES = ("sigmoid_bce.py", "digits.py", "compare_init.py", "compare_optimizers.py",
                     "overfit_tiny_batch.py")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_example(name, tmp_path, *args, out=True, expect_rc=0):
    """Run examples/<name> in a clean environment (private numba cache, cwd tmp_path);
    with `out`, its plots go to tmp_path/"plots".  Returns (stdout, plot directory)."""
    env = {"GRAPHC_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
           "MPLCONFIGDIR": str(tmp_path / "mpl")}
    if os.environ.get("PYTHONPATH"):  # a checkout run without installing tests itself, not the installed copy
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    out_dir = tmp_path / "plots"
    cmd = [sys.executable, str(EXAMPLES / name), *(["--out", str(out_dir)] if out else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == expect_rc, f"exit code {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout, out_dir


def number(stdout, label):
    """The number printed on the line `<label>: <number>`."""
    match = re.search(rf"^{re.escape(label)}: *([-+0-9.eE]+)", stdout, re.MULTILINE)
    assert match, f"no line {label!r} in:\n{stdout}"
    return float(match.group(1))


def table_rows(stdout, names):
    """{name: [the numbers on its row]} for table rows starting with one of `names`."""
    rows = {}
    for line in stdout.splitlines():
        for name in names:
            if line.strip().startswith(name + " "):
                cells = line.strip()[len(name):].split()
                rows[name] = [_cell(c) for c in cells]
    assert set(rows) == set(names), f"rows {sorted(set(names) - set(rows))} missing from:\n{stdout}"
    return rows


def _cell(text):
    try:
        return float(text)
    except ValueError:
        return text


def assert_png(path):
    """A real, non-trivial PNG: the signature, a plausible size, and not one flat colour."""
    path = Path(path)
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > 10_000, f"{path} is suspiciously small ({len(data)} bytes)"
    import matplotlib.image
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300, pixels.shape
    assert pixels[..., :3].std() > 0.02, f"{path} is (nearly) blank"


@pytest.mark.parametrize("name", TRAINING_EXAMPLES)
def test_example_has_docstring_main_and_out_option(name):
    source = (EXAMPLES / name).read_text()
    module = ast.parse(source)
    doc = ast.get_docstring(module)
    assert doc and f"python examples/{name}" in doc, "the docstring says what it shows and how to run it"
    main = next((f for f in module.body if isinstance(f, ast.FunctionDef) and f.name == "main"), None)
    assert main is not None and main.args.args and main.args.args[0].arg == "out_dir"
    assert f'default="out/{name[:-3]}"' in source, "--out defaults to out/<example name>"


def test_sigmoid_bce(tmp_path):
    stdout, plots = run_example("sigmoid_bce.py", tmp_path)
    assert number(stdout, "test accuracy") >= 0.95
    assert number(stdout, "train accuracy") >= 0.95
    norms = table_rows(stdout, ["layer1", "layer2", "layer3"])
    first = [norms[layer][0] for layer in ("layer1", "layer2", "layer3")]
    assert first[0] < first[1] < first[2], f"epoch-1 gradient norms should shrink towards the input: {first}"
    assert_png(plots / "loss.png")
    assert_png(plots / "grad_norms.png")


def test_digits(tmp_path):
    pytest.importorskip("sklearn")
    stdout, plots = run_example("digits.py", tmp_path)
    assert number(stdout, "test accuracy") >= 0.95
    ran = re.search(r"early stopping: ran (\d+) of at most (\d+) epochs; best val_loss [0-9.]+ at epoch (\d+)",
                    stdout)
    assert ran, stdout
    epochs, limit, best = map(int, ran.groups())
    assert 1 <= best <= epochs <= limit
    assert_png(plots / "history.png")


def test_digits_without_sklearn_names_the_extra(tmp_path):
    """With scikit-learn missing, digits.py exits 2 and says which extra to install."""
    script = EXAMPLES / "digits.py"
    code = ("import runpy, sys; sys.modules['sklearn'] = None; "  # None in sys.modules: ImportError
            f"sys.argv = [{str(script)!r}, '--out', {str(tmp_path / 'plots')!r}]; "
            f"runpy.run_path({str(script)!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"GRAPHC_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2, done.stderr
    assert "scikit-learn" in done.stderr and ".[digits]" in done.stderr


def test_compare_init(tmp_path):
    stdout, plots = run_example("compare_init.py", tmp_path)
    inits = ["zeros", "normal", "xavier_normal", "he_normal"]
    rows = table_rows(stdout, inits)  # loss ep 1, final loss, accuracy, |W1|, spread W1, spread W2
    zero_final, zero_acc, zero_norm, spread1, spread2 = rows["zeros"][1:]
    assert zero_norm > 1.0, "zero-init weights do move"
    assert spread1 <= 1e-12 and spread2 <= 1e-12, "but every unit keeps the same incoming weights"
    for init in ("xavier_normal", "he_normal"):
        final, accuracy, _, spread, _ = rows[init][1:]
        assert accuracy >= 0.9 and final < zero_final / 4
        assert spread > 1.0
    assert zero_acc < 0.7
    assert_png(plots / "loss.png")


def test_compare_optimizers(tmp_path):
    stdout, plots = run_example("compare_optimizers.py", tmp_path)
    labels = ["SGD(lr=0.05)", "Momentum(lr=0.05, mu=0.9)", "Adam(lr=0.01)"]
    rows = table_rows(stdout, labels)  # loss ep 1, final loss, "epoch k"/"never", accuracy
    final = {label: rows[label][1] for label in labels}
    assert all(loss < 0.5 for loss in final.values()), final
    sgd = final["SGD(lr=0.05)"]
    assert final["Momentum(lr=0.05, mu=0.9)"] < sgd and final["Adam(lr=0.01)"] < sgd, final
    assert rows["Adam(lr=0.01)"][-1] >= 0.95
    assert_png(plots / "loss.png")


def test_overfit_tiny_batch_with_the_default_out_dir(tmp_path):
    stdout, _ = run_example("overfit_tiny_batch.py", tmp_path, out=False)  # --out defaults to ./out/<name>
    assert abs(number(stdout, "initial loss") - 1.0986) < 0.1
    assert number(stdout, "final loss") < 1e-2
    assert number(stdout, "final accuracy") == 1.0
    assert_png(tmp_path / "out" / "overfit_tiny_batch" / "history.png")
