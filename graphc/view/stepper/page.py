"""Backprop, step by step, in the browser: one self-contained HTML page per graph.

`render_html(annotation)` lays the annotated graph out once with Graphviz (the
finished picture of `graphc render`, with stable ids on nodes and edges),
records the steps of the backward pass in the backprop table's order (see
graphc.view.stepper.tape), and writes one HTML file with the SVG, the steps as
JSON and a small inline script (graphc/view/stepper/assets).  Nothing is fetched at
view time: the page's Content-Security-Policy allows no network at all, and its
script runs only because its hash is listed.  Without JavaScript the page
shows the finished picture and the backprop table.

Every user string (graph, node and dim names, attrs) reaches the page as
escaped HTML text, as JSON with <, >, & and U+2028/9 escaped, or as SVG text
that went through graphc.view.stepper.svg's allowlist; the script writes it with
textContent only.
"""
import base64
import hashlib
import html
import json
from importlib import resources

from graphc.errors import GraphcError

ASSETS = "assets"
IFRAME_HEIGHT = 640


def _asset(name):
    return resources.files(__package__).joinpath(ASSETS, name).read_text(encoding="utf-8")


def json_for_script(data):
    """JSON that cannot end its <script> element or break a JavaScript string."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for ch, sub in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, sub)
    return text


class StepperPage:
    """The page: `.html` (text), `.save(path)`, and inline display in Jupyter."""

    def __init__(self, html_text, steps, name):
        self.html, self.steps, self.name = html_text, steps, name

    def save(self, path):
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.html)
        except OSError as e:
            raise GraphcError(f"cannot write {path}: {e.strerror}") from None
        return path

    def __str__(self):
        return self.html

    def _repr_html_(self):
        """An iframe whose srcdoc is the page, so its script runs inside a notebook."""
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" sandbox="allow-scripts allow-downloads" '
                f'style="width:100%;height:{IFRAME_HEIGHT}px;border:1px solid #ddd" '
                f'title="graphc stepper: {html.escape(self.name, quote=True)}"></iframe>')

    def widget(self):
        """An anywidget showing the page (`pip install 'graphc[notebook]'`)."""
        return stepper_widget(self)


def render_html(ann, *, collapse=False, rankdir="LR", quiz=False):
    """The stepper page for an annotation with values (from graphc.check.annotate;
    `gc.render_html(graph, feeds)` annotates and calls this).

    collapse: repeated blocks step as one unit and open on click.  quiz: start with
    quiz mode on (the next value stays hidden until revealed).
    """
    from graphc.view.labels import readable
    from graphc.view.render import RANKDIRS
    if rankdir not in RANKDIRS:
        raise GraphcError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    ann = readable(ann)
    if ann.values is None:
        raise GraphcError(f"the stepper for graph {ann.graph.name!r} needs values: pass feeds")
    page = _build(ann, collapse, rankdir, quiz)
    return StepperPage(page["html"], page["steps"], ann.graph.name)


def _build(ann, collapse, rankdir, quiz):
    from graphc.view.stepper.svg import full_dot, laid_out
    if collapse:
        from graphc.view.stepper.collapse import CollapsedView
        view = CollapsedView(ann, rankdir)
        svg, (elements, steps), expansions = laid_out(view.dot()), view.tape(), view.expansions()
    else:
        from graphc.view.stepper.tape import build_tape
        svg, (elements, steps), expansions = laid_out(full_dot(ann, rankdir)), build_tape(ann), []
    tape = {"graph": ann.graph.name, "exact": ann.exact, "quiz": bool(quiz), "collapse": bool(collapse),
            "elements": elements, "steps": steps}
    return {"html": _page(ann.graph.name, svg, tape, expansions, _table(ann)), "steps": steps}


def _table(ann):
    """The backprop table as static HTML (readable without JavaScript)."""
    from graphc.view.backprop_table import HEADER, backprop_rows, gradient_lines
    if not ann.graph.edge_grads:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r.cells()) + "</tr>"
                   for r in backprop_rows(ann))
    grads = "".join(f"<li>{html.escape(line)}</li>" for line in gradient_lines(ann))
    return (f'<details id="gc-table" open><summary>The backprop table</summary>'
            f'<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table><ul>{grads}</ul></details>')


def _expansion_html(expansions):
    parts = [f'<details class="gc-expand" id="{box}-inside" data-box="{box}">'
             f'<summary>Inside {html.escape(head)}</summary>{svg}</details>'
             for box, head, svg in expansions]
    return f'<section id="gc-expansions">{"".join(parts)}</section>' if parts else ""


CONTROLS = """<div id="gc-controls" role="toolbar" aria-label="steps">
<button id="gc-first" title="first (Home)">|◀</button><button id="gc-prev" title="previous (←)">◀</button>
<button id="gc-play" title="play/pause (space)">play</button><button id="gc-next" title="next (→)">▶</button>
<button id="gc-last" title="last (End)">▶|</button>
<input id="gc-slider" type="range" min="0" value="0" aria-label="step">
<label>jump to <select id="gc-jump"><option value="">node…</option></select></label>
<label><input id="gc-quiz" type="checkbox"> quiz</label>
<label title="shrink the picture to the window"><input id="gc-fit" type="checkbox"> fit</label>
<button id="gc-export-svg" title="this step as an SVG file">SVG</button>
<button id="gc-export-png" title="this step as a PNG file">PNG</button>
</div>"""

PANEL = """<aside id="gc-panel" aria-live="polite">
<div id="gc-count">step <span id="gc-k">0</span> / <span id="gc-n">0</span></div>
<div id="gc-title"></div>
<dl id="gc-fields"></dl>
<div id="gc-formula"></div>
<button id="gc-reveal" hidden>reveal</button>
<div id="gc-hover"><div id="gc-hover-text"></div><canvas id="gc-heat" width="96" height="96" hidden></canvas></div>
</aside>"""


def _page(name, svg, tape, expansions, table):
    script = _asset("stepper.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
           "img-src data: blob:; base-uri 'none'; form-action 'none'")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(f"graphc stepper: {name}")}</title>
<style>{_asset("stepper.css")}</style></head>
<body><header><h1>Backprop, step by step: {html.escape(name)}</h1><p id="gc-nojs">The finished picture: every value (green), gradient (red) and edge's U, L, U·L.
Turn on JavaScript to step through it.</p></header>
{CONTROLS}
<main><div id="gc-graph">{svg}</div>{PANEL}</main>
{_expansion_html(expansions)}
{table}
<script type="application/json" id="gc-tape">{json_for_script(tape)}</script>
<script>{script}</script>
</body></html>
"""


# The widget's front end: the page in a sandboxed iframe (srcdoc), as _repr_html_ does.
WIDGET_ESM = """
export default { render({ model, el }) {
  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "allow-scripts allow-downloads");
  frame.style.width = "100%"; frame.style.height = model.get("height") + "px"; frame.style.border = "0";
  frame.srcdoc = model.get("html");
  el.appendChild(frame);
} };
"""


def stepper_widget(page):
    """anywidget.AnyWidget showing `page` in an iframe (srcdoc), for JupyterLab and VS Code."""
    try:
        import anywidget
        import traitlets
    except ImportError:
        raise GraphcError("the notebook widget needs anywidget: pip install 'graphc[notebook]'") from None

    class StepperWidget(anywidget.AnyWidget):
        _esm = WIDGET_ESM
        html = traitlets.Unicode("").tag(sync=True)
        height = traitlets.Int(IFRAME_HEIGHT).tag(sync=True)

    return StepperWidget(html=page.html)
