"""End to end in Debian's chromium: pick a scene and methods, run, see images, table, plots and videos."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
from app_server import REPO, running_app  # noqa: E402

CHROMIUM = os.environ.get("QSCI_CHROMIUM", "/usr/bin/chromium")
SCENE = "embedded-camera-pan"
ARTIFACTS = REPO / "test-artifacts"

if not Path(CHROMIUM).is_file():
    pytest.skip(f"no chromium at {CHROMIUM} (set QSCI_CHROMIUM)", allow_module_level=True)


def _networks(monkeypatch) -> list[str]:
    """Networks to run beside GAP-TV: trained ones of the smallest family, else two untrained bit widths."""
    from ui.handlers import SHOW_UNTRAINED_ENV, method_choices

    monkeypatch.setenv(SHOW_UNTRAINED_ENV, "1")  # as the test server sees it
    choices, _, _ = method_choices()
    size = {"t": 0, "s": 1, "b": 2}  # smallest preset first: test time
    nets = sorted((size.get((v.split("-") + ["", ""])[1], 3), "untrained" in label, v)
                  for label, v in choices if v != "gap-tv")
    if not nets:
        pytest.skip(f"no network to compare with GAP-TV; the app offers {[v for _, v in choices]}")
    family = nets[0][2].split("-")[:2]
    same = [(untrained, v) for _, untrained, v in nets if v.split("-")[:2] == family]
    trained = [v for untrained, v in same if not untrained]
    if trained:
        return trained[:2]
    return sorted((v for _, v in same), key=lambda v: (not v.endswith("2bit"), not v.endswith("8bit"), v))[:2]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app") / "server.log") as url:
        yield url


def test_scene_and_methods_end_to_end(app_url, monkeypatch):
    methods = _networks(monkeypatch)  # GAP-TV is selected by default: two or three methods in all
    n = 1 + len(methods)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app_url)
            page.wait_for_selector("#run-scene", timeout=60_000)

            page.locator("#scene input").click()
            page.get_by_role("option", name=re.compile(re.escape(SCENE))).first.click()
            page.locator("#scene-which").get_by_text("first only (quick)").click()
            for m in methods:
                page.locator(f'#methods input[name="{m}"]').check()
            page.locator("#run-scene").click()

            expect = sync_api.expect
            summary = page.locator("#summary")
            for m in ["gap-tv", *methods]:
                expect(summary).to_contain_text(m, timeout=240_000)
            expect(page.locator("#recon-view img")).to_have_count(1 + n, timeout=30_000)  # truth + methods
            expect(page.locator("#error-view img")).to_have_count(n, timeout=30_000)
            expect(page.locator("#inputs-view img")).to_have_count(2, timeout=30_000)
            expect(page.locator("#plot-ops .js-plotly-plot")).to_be_visible(timeout=30_000)
            expect(page.locator("#plot-time .js-plotly-plot")).to_be_visible(timeout=30_000)

            # one slider moves every method to the same frame
            number = page.locator("#frame input[type=number]")
            number.fill("5")
            number.press("Enter")
            expect(page.locator("#recon-view")).to_contain_text("frame 5", timeout=30_000)

            page.get_by_role("button", name=re.compile("^Videos")).click()
            expect(page.locator("#videos video")).to_have_count(1 + n, timeout=30_000)  # truth + methods

            page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "app.png").stat().st_size > 10_000
    if os.environ.get("QSCI_UPDATE_SCREENSHOT"):  # the README's picture: smaller, 256 colours
        from PIL import Image

        im = Image.open(ARTIFACTS / "app.png").convert("RGB")
        im = im.resize((im.width * 3 // 5, im.height * 3 // 5), Image.LANCZOS).quantize(256)
        im.save(REPO / "assets" / "screenshot.png", optimize=True)
