"""Run one `graphc` command over many files in ONE process (a subprocess each would cost
~1 s of start-up per file): `python drive_cli.py COMMAND OUT_DIR FILE... [-- EXTRA ARGS]`.

Run it with cwd = an empty folder.  For each file it calls graphc.cli.main.main in process,
with stdout and stderr captured and a per-file alarm, and reports as one JSON list on
stdout: the exit code, the stderr text, the seconds taken, and every path that appeared
in the cwd outside OUT_DIR (a payload that ran would leave PWNED there).
"""
import contextlib
import io
import json
import os
import signal
import sys
import time

PER_FILE_S = 20


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout(f"over {PER_FILE_S} s")


def created(out_dir):
    out = os.path.abspath(out_dir)
    found = []
    for root, dirs, files in os.walk("."):
        dirs[:] = [d for d in dirs if os.path.abspath(os.path.join(root, d)) != out]
        found += [os.path.join(root, f) for f in files]
    return found


def argv_for(command, path, out_dir, extra):
    stem = os.path.basename(path).replace(".", "_")
    if command == "render":
        return ["render", path, "-o", os.path.join(out_dir, stem + ".dot"), *extra]
    return [command, path, *extra]


def run_one(command, path, out_dir, extra):
    from graphc.cli.main import main
    err, out = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    signal.alarm(PER_FILE_S)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(argv_for(command, path, out_dir, extra))
            except SystemExit as e:  # argparse
                code = e.code
    except Timeout as e:
        code = f"timeout: {e}"
    except BaseException as e:  # noqa: BLE001 - an escaped exception is what the test reports
        code = f"raised {type(e).__name__}: {e}"
    finally:
        signal.alarm(0)
    return {"file": os.path.basename(path), "code": code, "stderr": err.getvalue(),
            "seconds": round(time.perf_counter() - start, 3), "created": created(out_dir)}


def main(argv):
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    command, out_dir, files = argv[0], argv[1], argv[2:]
    signal.signal(signal.SIGALRM, _alarm)
    results = [run_one(command, f, out_dir, extra) for f in files]
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
