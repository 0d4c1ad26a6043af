"""The backprop stepper page (graphc.view.stepper.page), built here and driven in a real headless Chromium.

Oracles: the lecture's hand calculation (seed 001: f = (x1 + x2) * x3 - x4 at
(5, 4, 3, 2): f = 25, gradients 3, 3, 9, -1) through `gc.evaluate` on the
gradient graph, and the order of the backprop table (graphc.view.backprop_table).
Browser tests share one Chromium per module (tests/browser.py) and skip with
one reason where there is none.
"""
import base64
import io
import re
import xml.etree.ElementTree as ET
from fractions import Fraction

import numpy as np
import pytest

import graphc as gc
from graphc.view import format as fmt
from graphc.view.stepper import page as stepper
from tests import browser as B
from tests.stepper_cases import HOSTILE, ODD, POINT, hostile_graph, lecture, odd_pages  # noqa: F401 (shared fixtures)
from tests.conftest import lecture_graph


# ----- fixtures and helpers ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    b = B.launch()
    yield b
    b.close()


@pytest.fixture(scope="module")
def lecture_url(lecture, tmp_path_factory):
    path = tmp_path_factory.mktemp("stepper") / "lecture.html"
    lecture[2].save(path)
    return path.as_uri()


def open_page(chromium, url, javascript=True, also=(), bypass_csp=False):
    """A page at `url` that may fetch nothing but the page itself, or the pages in `also`
    (everything else is aborted and recorded)."""
    page = chromium.page(javascript, bypass_csp)
    page.blocked = []

    def route(r):
        if r.request.url == url or r.request.url in also:
            r.continue_()
        else:
            page.blocked.append(r.request.url)
            r.abort()
    page.route("**/*", route)
    page.goto(url)
    return page


def assert_clean(page, *urls):
    assert page.problems == [], page.problems
    assert page.blocked == [] and set(page.requests) == set(urls), (page.blocked, page.requests)


READ = """() => {
  const shown = t => getComputedStyle(t).visibility === 'visible';
  const groups = kind => [...document.querySelectorAll('#gc-graph g.' + kind)];
  const showing = (kind, cls) => groups(kind).filter(g => [...g.querySelectorAll('text.' + cls)].some(shown)).map(g => g.id);
  const fields = {};
  document.querySelectorAll('#gc-fields dd').forEach(dd => { fields[dd.dataset.field] = dd.textContent; });
  const cur = [...document.querySelectorAll('#gc-graph .gc-current')];
  return {k: Number(document.getElementById('gc-k').textContent), title: document.getElementById('gc-title').textContent,
          formula: document.getElementById('gc-formula').textContent, fields,
          current: cur.map(g => g.id), currentName: cur.length ? cur[0].querySelector('text').textContent : null,
          values: showing('node', 'gc-val'), grads: showing('node', 'gc-grad'), labels: showing('edge', 'gc-lbl')};
}"""


def num(text):
    return float(Fraction(text.strip()))


# ----- the lecture graph, step by step ----------------------------------------------------------
def expected_numbers(graph, ev, title):
    """What the step titled `title` must show, from gc.evaluate alone."""
    if title.startswith("forward: "):
        name = title[len("forward: "):].split(" ")[0]
        return "value", {"value": float(ev[name])}, name
    if title.startswith("gradient of "):
        name = title[len("gradient of "):]
        grad = 1.0 if name == "f" else (float(ev.grad(name)) if name in graph.grads else
                                        float(next(ev.edge(graph.name_of(k[0]), name)["upstream"]
                                                   for k in graph.edge_grads if k[1] == graph.find(name))))
        return "grad", {"grad": grad}, name
    src, dst = re.match(r"backward: (\S+) -> (\S+) in", title).groups()
    e = ev.edge(src, dst)
    return "edge", {"U": float(e["upstream"]), "L": float(e["local"]), "UL": float(e["downstream"])}, (src, dst)


def test_every_step_shows_what_gc_evaluate_computes(chromium, lecture, lecture_url):
    graph, ev, page_obj = lecture
    assert float(ev["f"]) == 25 and [float(ev.grad(x)) for x in ("x1", "x2", "x3", "x4")] == [3, 3, 9, -1]
    page = open_page(chromium, lecture_url)
    n = page.evaluate("window.graphcStepper.steps")
    assert n == len(page_obj.steps) == 20
    start = page.evaluate(READ)
    assert start["k"] == 0 and start["values"] == [] and start["labels"] == [] and start["current"] == []
    seen_values, seen_grads, seen_edges = set(), set(), set()
    for k in range(1, n + 1):
        page.click("#gc-next")
        got = page.evaluate(READ)
        assert got["k"] == k
        kind, want, what = expected_numbers(graph, ev, got["title"])
        shown = {f: num(got["fields"][f]) for f in want}
        assert shown == pytest.approx(want), (k, got["title"])
        if kind == "edge":
            key = next(key for key in graph.edge_grads if key[:2] == (graph.find(what[0]), graph.find(what[1])))
            assert got["current"] == ["gc-e{}-{}-{}".format(*key)]
            assert got["formula"].startswith(f"L = ∂{what[1]}/∂{what[0]} = ")
            seen_edges.add(got["current"][0])
        else:
            assert got["current"] == [f"gc-n{graph.find(what)}"] and got["currentName"] == what
            (seen_values if kind == "value" else seen_grads).add(got["current"][0])
        # the picture shows exactly what has been computed so far
        assert (set(got["values"]), set(got["grads"]), set(got["labels"])) == (seen_values, seen_grads, seen_edges)
    assert len(seen_values) == 7 and len(seen_grads) == 7 and len(seen_edges) == 6
    assert_clean(page, lecture_url)
    page.context.close()


def test_keyboard_slider_and_jump(chromium, lecture, lecture_url):
    page = open_page(chromium, lecture_url)
    k = lambda: page.evaluate("window.graphcStepper.state().k")  # noqa: E731
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    assert k() == 3
    page.keyboard.press("ArrowLeft")
    assert k() == 2
    page.keyboard.press("End")
    assert k() == 20
    page.keyboard.press("Home")
    assert k() == 0
    page.fill("#gc-slider", "9")
    assert k() == 9 and page.evaluate(READ)["title"] == "backward: x4 -> f in f = b - x4"
    page.select_option("#gc-jump", label="b (gradient)")
    assert page.evaluate(READ)["title"] == "gradient of b"
    page.keyboard.press(" ")
    assert page.text_content("#gc-play") == "pause"
    page.wait_for_function("window.graphcStepper.state().k > 11", timeout=5000)
    page.keyboard.press(" ")
    assert page.text_content("#gc-play") == "play"
    assert_clean(page, lecture_url)
    page.context.close()


def test_quiz_hides_the_next_value_until_revealed(chromium, lecture_url):
    page = open_page(chromium, lecture_url)
    page.check("#gc-quiz")
    page.evaluate("window.graphcStepper.go(4)")
    page.keyboard.press("ArrowRight")  # step 5: a = x1 + x2
    got = page.evaluate(READ)
    assert got["k"] == 5 and got["fields"]["value"] == "?" and "gc-n4" not in got["values"]
    assert page.is_visible("#gc-reveal")
    page.click("#gc-reveal")
    got = page.evaluate(READ)
    assert got["fields"]["value"] == "9" and "gc-n4" in got["values"]
    page.evaluate("window.graphcStepper.go(8)")
    page.keyboard.press("ArrowRight")  # x4 -> f: U is known, L and U·L are to predict
    fields = page.evaluate(READ)["fields"]
    assert fields == {"U": "1", "L": "?", "UL": "?"}
    page.keyboard.press("ArrowRight")  # the second press reveals, it does not move on
    got = page.evaluate(READ)
    assert got["k"] == 9 and got["fields"] == {"U": "1", "L": "-1", "UL": "-1"}
    assert_clean(page, lecture_url)
    page.context.close()


def test_export_a_frame_as_svg_and_png(chromium, lecture_url, tmp_path):
    from PIL import Image
    page = open_page(chromium, lecture_url)
    page.evaluate("window.graphcStepper.go(12)")
    frame = ET.fromstring(page.evaluate("window.graphcStepper.frameSVG()"))
    ns = "{http://www.w3.org/2000/svg}"
    current = [g.get("id") for g in frame.iter(f"{ns}g") if "gc-current" in (g.get("class") or "")]
    assert current == [page.evaluate(READ)["current"][0]]
    assert "visibility:hidden" in frame.find(f"{ns}style").text
    png = page.evaluate("window.graphcStepper.framePNG(1)")
    image = Image.open(io.BytesIO(base64.b64decode(png.split(",", 1)[1])))
    box = [float(v) for v in frame.get("viewBox").split()]
    assert image.size == (int(np.ceil(box[2])), int(np.ceil(box[3])))
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert (np.abs(pixels - [255, 111, 0]).sum(axis=1) < 60).sum() > 50  # the orange highlight is drawn
    with page.expect_download() as dl:
        page.click("#gc-export-svg")
    assert dl.value.suggested_filename == "lecture-step12.svg"
    dl.value.save_as(tmp_path / "frame.svg")
    ET.parse(tmp_path / "frame.svg")
    assert_clean(page, lecture_url)
    page.context.close()


def test_without_javascript_the_finished_picture_shows(chromium, lecture_url):
    page = open_page(chromium, lecture_url, javascript=False)
    values = page.locator("#gc-graph text.gc-val")
    grads = page.locator("#gc-graph text.gc-grad")
    labels = page.locator("#gc-graph text.gc-lbl")
    assert values.count() == 7 and grads.count() == 7 and labels.count() == 18
    for loc in (values, grads, labels):
        assert all(loc.nth(i).is_visible() for i in range(loc.count()))
    assert set(values.all_text_contents()) >= {"value 25", "value 27", "value 9"}
    assert {"grad 3", "grad 9", "grad -1"} <= set(grads.all_text_contents())
    assert page.is_hidden("#gc-controls") and page.is_visible("#gc-nojs") and page.is_visible("#gc-table")
    assert_clean(page, lecture_url)
    page.context.close()


def test_hostile_names_do_not_run(chromium, tmp_path):
    path = tmp_path / "hostile.html"
    gc.render_html(hostile_graph(), POINT).save(path)
    page = open_page(chromium, path.as_uri())
    page.evaluate("window.graphcStepper.go(5)")
    assert page.evaluate("window.pwned") is None
    assert HOSTILE.replace("\u2028", "") in page.text_content("#gc-title").replace("\u2028", "")
    assert_clean(page, path.as_uri())
    page.context.close()


def test_collapsed_layers_step_as_one_unit_and_open_on_click(chromium, tmp_path):
    from tests.models import deep_mlp
    graph = deep_mlp(depth=3, named=True)
    rng = np.random.default_rng(0)
    feeds = {graph.name_of(n): rng.standard_normal(tuple(3 if d == "N" else d for d in graph.shape(n)))
             for n in graph.nodes_with_op("input", "param")}
    page_obj = gc.render_html(graph, feeds, collapse=True)
    unit = [s for s in page_obj.steps if s["target"] == "gc-u0"]
    assert [s["kind"] for s in unit] == ["value", "grad"]  # 3 layers x (W, b, matmul, add, tanh): one unit
    assert "layer1 … layer3 ×3" in unit[0]["title"]
    want = gc.evaluate(gc.grad(graph), feeds)
    assert unit[0]["value"] == " ".join(fmt.fmt_value(want["layer3.h"]))
    inner = {graph.find(f"layer{i}.{x}") for i in (1, 2, 3) for x in ("W", "b", "h")}
    assert not {s["target"] for s in page_obj.steps} & {f"gc-n{n}" for n in inner}
    ids = re.findall(r'\sid="([^"]+)"', page_obj.html)
    assert len(ids) == len(set(ids))  # the boxes' insides are laid out with ids of their own
    path = tmp_path / "deep.html"
    page_obj.save(path)
    page = open_page(chromium, path.as_uri())
    inside = page.locator("#gc-u0-inside")
    assert inside.get_attribute("open") is None
    page.click("#gc-u0")
    assert inside.get_attribute("open") is not None
    names = inside.locator("g.node text:first-of-type").all_text_contents()
    assert {"layer1.W", "layer2.h", "layer3.b"} <= set(names)
    hidden = "e => getComputedStyle(e).visibility === 'hidden'"
    assert all(inside.locator("text.gc-val").evaluate_all(f"es => es.map({hidden})"))  # step 0: not computed yet
    page.evaluate("window.graphcStepper.go(2)")
    assert not any(inside.locator("text.gc-val").evaluate_all(f"es => es.map({hidden})"))
    assert_clean(page, path.as_uri())
    page.context.close()


def test_spiral_net_page_loads_and_steps_fast(chromium, tmp_path):
    """Seed 004's spiral net (300 points, 100 hidden units): time measured in the browser, printed."""
    import importlib.util
    from graphc.train.datasets import spiral
    spec = importlib.util.spec_from_file_location("spiral_gradients", "examples/spiral_gradients.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(0)
    X, y = spiral(rng)
    feeds = {"X": X, "y": y, "W1": 0.01 * rng.standard_normal((2, 100)), "b1": np.zeros((1, 100)),
             "W2": 0.01 * rng.standard_normal((100, 3)), "b2": np.zeros((1, 3))}
    page_obj = gc.render_html(module.build(), feeds)
    path = tmp_path / "spiral.html"
    page_obj.save(path)
    page = open_page(chromium, path.as_uri())
    timing = page.evaluate("""() => {
      const s = window.graphcStepper, t0 = performance.now();
      for (let k = 0; k <= s.steps; k++) { s.go(k); document.body.getBoundingClientRect(); }
      return {steps: s.steps, step_ms: (performance.now() - t0) / (s.steps + 1),
              load_ms: performance.getEntriesByType('navigation')[0].loadEventEnd};
    }""")
    print(f"\nspiral stepper: {len(page_obj.html) / 1024:.0f} KiB, {timing['steps']} steps, "
          f"load {timing['load_ms']:.0f} ms, {timing['step_ms']:.2f} ms per step (incl. style and layout)")
    assert timing["steps"] == len(page_obj.steps) > 50
    assert timing["load_ms"] < 20000 and timing["step_ms"] < 500  # sanity only: performance is measured, not asserted
    page.hover("#gc-n" + str(module.build().find("hidden")))
    assert page.is_visible("#gc-heat") and "(300, 100)" in page.text_content("#gc-hover-text")
    assert_clean(page, path.as_uri())
    page.context.close()


SNAPSHOT = "tests/data/stepper_lecture_final.png"


def compare_png(actual, stored, out_dir, level=64, max_fraction=0.005):
    """Fail, writing the actual image and a diff image to out_dir, when more than max_fraction
    of the pixels differ by more than `level` in some channel (antialiasing stays under it)."""
    import os
    from PIL import Image
    got = np.asarray(Image.open(io.BytesIO(actual)).convert("RGB")).astype(int)
    (out_dir / "actual.png").write_bytes(actual)
    if os.environ.get("GRAPHC_UPDATE_SNAPSHOTS") == "1":
        with open(stored, "wb") as f:
            f.write(actual)
    want = np.asarray(Image.open(stored).convert("RGB")).astype(int)
    assert got.shape == want.shape, f"size {got.shape[:2]} != stored {want.shape[:2]}; see {out_dir / 'actual.png'}"
    differ = np.abs(got - want).max(axis=2) > level
    diff = (want * 0.3 + 178).astype(np.uint8)
    diff[differ] = (255, 0, 0)
    Image.fromarray(diff).save(out_dir / "diff.png")
    assert differ.mean() <= max_fraction, (f"{differ.mean():.2%} of pixels differ from {stored}; "
                                           f"see {out_dir / 'diff.png'} (GRAPHC_UPDATE_SNAPSHOTS=1 to accept)")


def test_final_step_looks_as_stored(chromium, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_LAYOUT", "pygraphviz")  # the stored picture's layout engine, even where `dot` is installed
    lecture_url = gc.render_html(lecture_graph(), POINT).save(tmp_path / "lecture.html").as_uri()
    page = open_page(chromium, lecture_url)
    page.set_viewport_size({"width": 1280, "height": 720})
    page.keyboard.press("End")
    page.evaluate("document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))))")
    shot = page.locator("#gc-graph svg").screenshot(animations="disabled", caret="hide")
    compare_png(shot, SNAPSHOT, tmp_path)
    assert_clean(page, lecture_url)
    page.context.close()


def test_the_snapshot_comparison_catches_a_layout_change(tmp_path):
    from PIL import Image
    stored = np.asarray(Image.open(SNAPSHOT).convert("RGB")).copy()
    moved = np.roll(stored, 12, axis=1)  # the picture shifted right by 12 pixels
    buf = io.BytesIO()
    Image.fromarray(moved).save(buf, format="PNG")
    with pytest.raises(AssertionError, match="pixels differ"):
        compare_png(buf.getvalue(), SNAPSHOT, tmp_path)
    assert (tmp_path / "diff.png").exists()


def test_odd_graphs_step_in_the_browser(chromium, odd_pages, tmp_path):
    urls = [page_obj.save(tmp_path / f"{name}.html").as_uri() for name, page_obj in odd_pages.items()]
    page = open_page(chromium, urls[0], also=urls)
    for url, page_obj in zip(urls, odd_pages.values()):
        page.goto(url)
        shown = page.evaluate("""() => { const s = window.graphcStepper, seen = [];
          for (let k = 0; k <= s.steps; k++) { s.go(k); seen.push(document.getElementById('gc-title').textContent); }
          return seen; }""")
        assert len(shown) == len(page_obj.steps) + 1 and shown[1:] == [s["title"] for s in page_obj.steps]
        page.hover("#gc-n0")  # the input's preview: shape, entries (none when zero-size), heat map
        assert "x: input" in page.text_content("#gc-hover-text")
    assert_clean(page, *urls)
    page.context.close()


def test_notebook_displays_run_the_page(chromium, lecture):
    """_repr_html_ (what Jupyter shows) and the anywidget front end (WIDGET_ESM, run here
    without a notebook): each an iframe whose page steps."""
    page_obj = lecture[2]
    page = chromium.page()
    page.set_content(f"<div id='repr'>{page_obj._repr_html_()}</div><div id='widget'></div>")
    page.evaluate("""async ([esm, html]) => {
        const mod = await import(URL.createObjectURL(new Blob([esm], {type: 'text/javascript'})));
        mod.default.render({model: {get: k => ({html, height: 640})[k]}, el: document.getElementById('widget')});
    }""", [stepper.WIDGET_ESM, page_obj.html])
    page.wait_for_function("document.querySelectorAll('iframe').length === 2")
    frames = [f for f in page.frames if f != page.main_frame]
    assert len(frames) == 2
    for frame in frames:
        frame.wait_for_function("window.graphcStepper !== undefined")
        frame.evaluate("window.graphcStepper.go(20)")
        assert frame.text_content("#gc-k") == "20" and "grad 3" in frame.text_content("#gc-n0")
    assert page.problems == [], page.problems
    page.context.close()


def test_the_network_checks_can_fail(chromium, lecture_url):
    """The page's CSP refuses a fetch before it leaves; with the CSP bypassed, the route
    interception records it.  So a page that did fetch would fail assert_clean."""
    fetch = "fetch('http://graphc.invalid/x.js').then(() => 'fetched', () => 'refused')"
    page = open_page(chromium, lecture_url)
    assert page.evaluate(fetch) == "refused" and page.blocked == []
    assert any("Content Security Policy" in p for p in page.problems)
    page.context.close()
    page = open_page(chromium, lecture_url, bypass_csp=True)
    assert page.evaluate(fetch) == "refused" and page.blocked == ["http://graphc.invalid/x.js"]
    page.context.close()
