"""A headless Chromium for tests, through Playwright (`pip install playwright`), or a skip.

Playwright cannot download its own browsers here, so it drives Debian's
`chromium` (`apt-get install chromium`; .ci/run installs it when it runs as
root).  GRAPHC_CHROMIUM names another executable.  With no Playwright or no
browser, `launch()` skips with one reason, the same for every test.
"""
import os
import shutil

import pytest

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--font-render-hinting=none", "--force-color-profile=srgb", "--hide-scrollbars"]


def chromium_path():
    wanted = os.environ.get("GRAPHC_CHROMIUM")
    for name in ([wanted] if wanted else []) + list(CANDIDATES):
        found = shutil.which(name) if not os.path.isabs(name) else (name if os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def skip_reason():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser tests skipped: playwright is not installed (pip install -e '.[test]')"
    if chromium_path() is None:
        return ("browser tests skipped: no chromium found (apt-get install chromium, "
                "or set GRAPHC_CHROMIUM to a Chromium executable)")
    return None


class Browser:
    """One Chromium for a test module; fresh contexts per test."""

    def __init__(self):
        from playwright.sync_api import sync_playwright
        self._pw = sync_playwright().start()
        self.context_args = dict(viewport={"width": 1000, "height": 640}, device_scale_factor=1,
                                 reduced_motion="reduce", color_scheme="light", locale="en-US",
                                 timezone_id="UTC")
        # launch() starts Chromium with a fresh temporary user-data-dir of its own
        self.browser = self._pw.chromium.launch(executable_path=chromium_path(), args=ARGS, headless=True)

    def page(self, javascript=True, bypass_csp=False):
        """A new page in a new context, recording console messages, page errors and requests."""
        ctx = self.browser.new_context(java_script_enabled=javascript, accept_downloads=True, bypass_csp=bypass_csp,
                                       **self.context_args)
        page = ctx.new_page()
        page.problems, page.requests = [], []
        page.on("console", lambda m: page.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
        page.on("request", lambda r: page.requests.append(r.url))
        return page

    def close(self):
        self.browser.close()
        self._pw.stop()


def launch():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    return Browser()
