"""The backprop stepper: one self-contained HTML page (page.py) built from a tape of
steps (tape.py), an SVG drawing (svg.py) and collapsed boxes (collapse.py)."""
from graphc.view.stepper.page import render_html, stepper_widget  # noqa: F401
