"""The stepper page (graphc.view.stepper.page) as text and data: the tape's order and numbers,
the formulas, escaping, the SVG allowlist, exact rationals, Jupyter and the CLI.
The same pages in a real browser: tests/test_stepper.py."""
import base64
import hashlib
import html
import json
import re
import xml.etree.ElementTree as ET

import pytest

import graphc as gc
from graphc import render
from graphc.view.stepper import page as stepper
from graphc.view.backprop_table import backprop_rows
from graphc.errors import GraphcError
from graphc.view.stepper.svg import clean_svg
from tests.conftest import lecture_graph
from tests.stepper_cases import HOSTILE, ODD, POINT, hostile_graph, tape_of, lecture, odd_pages  # noqa: F401 (shared fixtures)



def test_tape_follows_the_backprop_table(lecture):
    graph, _, page = lecture
    edges = [s["title"].split(": ", 1)[1].split(" in ")[0] for s in page.steps if s["kind"] == "edge"]
    assert edges == [r.edge for r in backprop_rows(render.annotate(graph, POINT))]
    kinds = [s["kind"] for s in page.steps]
    assert kinds[:7] == ["value"] * 7 and kinds.count("grad") == 7 and len(kinds) == 20
    # a gradient step comes after every edge out of its node and before every edge into it
    for i, s in enumerate(page.steps):
        if s["kind"] == "grad" and s["node"] != "f":
            name = s["node"]
            outs = [j for j, t in enumerate(page.steps) if t["kind"] == "edge" and t["title"].startswith(f"backward: {name} ->")]
            ins = [j for j, t in enumerate(page.steps) if t["kind"] == "edge" and f"-> {name} in" in t["title"]]
            assert max(outs) < i < min(ins or [len(page.steps)])


def test_local_derivative_formulas_come_from_the_op_table(lecture):
    formulas = {s["title"].split(": ")[1].split(" in ")[0]: s["formula"] for s in lecture[2].steps if s["kind"] == "edge"}
    assert formulas == {"x4 -> f": "∂f/∂x4 = -1", "b -> f": "∂f/∂b = 1", "x3 -> b": "∂b/∂x3 = a",
                        "a -> b": "∂b/∂a = x3", "x2 -> a": "∂a/∂x2 = 1", "x1 -> a": "∂a/∂x1 = 1"}


def test_page_is_self_contained_and_its_script_is_pinned(lecture):
    text = lecture[2].html
    markup = re.sub(r"<script>.*?</script>", "", text, flags=re.S)  # the code itself only builds blob: links
    assert not re.search(r"\s(src|href|xlink:href|action|srcset)\s*=", markup, re.I) and "@import" not in text
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    script = re.findall(r"<script>(.*?)</script>", text, re.S)
    assert len(script) == 1
    digest = base64.b64encode(hashlib.sha256(script[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in text and "default-src 'none'" in text


def test_json_for_script_cannot_close_the_script_element():
    data = {"name": HOSTILE, "n": [1, "\u2029"]}
    text = stepper.json_for_script(data)
    assert json.loads(text) == data
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}


def test_hostile_names_stay_text():
    text = gc.render_html(hostile_graph(), POINT).html
    assert text.count("<script") == 2 and text.count("</script>") == 2  # the tape and the code
    assert "<script>window.pwned" not in text and "\u2028" not in text.split('id="gc-tape">')[1]
    assert HOSTILE in tape_of(text)["steps"][4]["title"]


def test_clean_svg_keeps_drawing_and_drops_links_scripts_and_handlers():
    dirty = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 9 9" '
             'onload="alert(1)"><g id="node1" class="node" onclick="x()"><a xlink:href="javascript:alert(2)">'
             '<text>link</text></a><script>alert(3)</script><image href="http://evil/x.png"/>'
             '<foreignObject><p>hi</p></foreignObject><path d="M0,0" fill="url(http://evil/#f)" stroke="black"/>'
             '<text fill="#1a7f37" style="background:url(http://evil)">value 5</text></g></svg>')
    clean = clean_svg(dirty)
    for bad in ("onload", "onclick", "javascript", "script", "image", "foreignObject", "evil", "style", "<a"):
        assert bad not in clean, bad
    root = ET.fromstring(clean)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["value 5"] and 'class="gc-val"' in clean and 'stroke="black"' in clean


def test_exact_rationals():
    text = gc.render_html(lecture_graph(), {"x1": "1/3", "x2": 4, "x3": 3, "x4": 2}, exact=True).html
    steps = tape_of(text)["steps"]
    edge = next(s for s in steps if s["title"].startswith("backward: x3 -> b"))
    assert (edge["L"], edge["UL"]) == ("13/3", "13/3")  # L = a = 1/3 + 4, exactly
    assert next(s for s in steps if s["kind"] == "value" and s["node"] == "f")["value"] == "11"


def test_repr_html_is_an_iframe_with_the_page(lecture):
    page = lecture[2]
    frame = page._repr_html_()
    assert frame.startswith("<iframe srcdoc=\"") and "allow-scripts" in frame
    srcdoc = re.match(r'<iframe srcdoc="([^"]*)"', frame).group(1)
    assert html.unescape(srcdoc) == page.html


def test_anywidget_wrapper(lecture):
    pytest.importorskip("anywidget")
    w = lecture[2].widget()
    assert w.html == lecture[2].html


LECTURE_FEEDS = ["--feed", "x1=5", "--feed", "x2=4", "--feed", "x3=3", "--feed", "x4=2"]


def lecture_file(tmp_path):
    """The lecture graph as a graph file (read, never run, by every version of the CLI)."""
    from graphc.io import graphfile as graphfile
    path = tmp_path / "lecture.json"
    graphfile.save(lecture_graph(), path)
    return str(path)


def test_cli_writes_the_page(tmp_path, capsys):
    from graphc.cli.main import main
    out = tmp_path / "lecture.html"
    assert main(["render", lecture_file(tmp_path), *LECTURE_FEEDS, "--html", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    steps = tape_of(out.read_text(encoding="utf-8"))["steps"]
    assert [s["value"] for s in steps if s["kind"] == "value"][-1] == "25"


def test_cli_refuses_options_the_stepper_does_not_draw(tmp_path, capsys):
    from graphc.cli.main import main
    out = tmp_path / "x.html"
    assert main(["render", lecture_file(tmp_path), *LECTURE_FEEDS, "--html", "--backward-graph", "-o", str(out)]) == 2
    assert "--html steps through" in capsys.readouterr().err and not out.exists()


def test_needs_feeds():
    with pytest.raises(GraphcError, match="needs values"):
        gc.render_html(lecture_graph())


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_graphs_give_a_page_whose_steps_all_point_into_the_picture(odd_pages, name):
    text = odd_pages[name].html
    tape = tape_of(text)
    svg_ids = set(re.findall(r'<g id="([^"]+)" class="(?:node|edge)"', text))
    assert {s["target"] for s in tape["steps"]} <= svg_ids and set(tape["elements"]) <= svg_ids
    kinds = [s["kind"] for s in tape["steps"]]
    assert kinds.count("edge") == (0 if name == "no-grads" else 3)
    if name != "no-grads":
        assert [s["formula"] for s in tape["steps"] if s["kind"] == "edge"][1:] == ["∂y/∂x = x"] * 2


def test_no_browser_skips_with_one_reason(monkeypatch):
    from tests import browser
    monkeypatch.setattr(browser, "CANDIDATES", ("/nonexistent/chromium",))
    monkeypatch.delenv("GRAPHC_CHROMIUM", raising=False)
    assert browser.chromium_path() is None
    assert browser.skip_reason().startswith("browser tests skipped: no chromium found")
    with pytest.raises(pytest.skip.Exception, match="no chromium found"):
        browser.launch()
