"""Turn DOT source into svg, png or pdf with whatever Graphviz this installation has.

In order: the `dot` program when it is on PATH (through the `graphviz`
package), else pygraphviz, whose wheels bundle the Graphviz libraries, so a
pip-only install can draw.  With neither, `write` saves the .dot file and
raises LayoutUnavailable saying how to install the rest.  GRAPHC_LAYOUT=dot,
pygraphviz or none forces a choice (none: DOT only).
"""
import os
import shutil
import tempfile

from graphc.errors import GraphcError

INSTALL_HINT = ("install pygraphviz (`pip install 'pygraphviz>=2.0.1'`, its wheels bundle Graphviz) "
                "or the Graphviz `dot` program (e.g. `apt-get install graphviz`)")


class LayoutUnavailable(GraphcError):
    """No Graphviz layout engine is installed; only DOT can be written."""


def engine():
    """'dot', 'pygraphviz' or None: what will lay graphs out here."""
    forced = os.environ.get("GRAPHC_LAYOUT")
    if forced:
        if forced not in ("dot", "pygraphviz", "none"):
            raise GraphcError(f"GRAPHC_LAYOUT must be dot, pygraphviz or none, got {forced!r}")
        return None if forced == "none" else forced
    if shutil.which("dot"):
        return "dot"
    try:
        import pygraphviz  # noqa: F401
    except ImportError:
        return None
    return "pygraphviz"


def draw(source, fmt):
    """Bytes of the laid-out drawing in `fmt` (svg, png or pdf)."""
    which = engine()
    if which == "dot":
        import graphviz
        return graphviz.Source(source).pipe(format=fmt)
    if which == "pygraphviz":
        return _draw_pygraphviz(source, fmt)
    raise LayoutUnavailable(f"cannot lay out {fmt}: no Graphviz found; {INSTALL_HINT}")


def _draw_pygraphviz(source, fmt):
    import pygraphviz
    with _quiet_fontconfig():
        graph = pygraphviz.AGraph(string=source)
        graph.layout(prog="dot")
        return graph.draw(format=fmt)


class _quiet_fontconfig:
    """The wheel's bundled fontconfig warns about newer system config files on fd 2;
    hide those lines (they are harmless) and pass any other message on."""

    def __enter__(self):
        self.saved = os.dup(2)
        self.tmp = tempfile.TemporaryFile()
        os.dup2(self.tmp.fileno(), 2)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.tmp.seek(0)
        lines = self.tmp.read().decode("utf-8", "replace").splitlines()
        self.tmp.close()
        rest = [line for line in lines if not line.startswith("Fontconfig ")]
        if rest:
            os.write(2, ("\n".join(rest) + "\n").encode())
        return False


def write(source, path, fmt):
    """Write `path` in `fmt`; returns the engine used ('dot' text needs none)."""
    path = str(path)
    if fmt == "dot":
        _write(path, source.encode("utf-8"))
        return "none"
    try:
        data = draw(source, fmt)
    except LayoutUnavailable:
        dot_path = path.rsplit(".", 1)[0] + ".dot"
        _write(dot_path, source.encode("utf-8"))
        raise LayoutUnavailable(f"cannot write {path}: no Graphviz found; wrote {dot_path} instead; "
                                f"{INSTALL_HINT}") from None
    _write(path, data)
    return engine()


def _write(path, data):
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise GraphcError(f"cannot write {path}: {e.strerror}") from None
