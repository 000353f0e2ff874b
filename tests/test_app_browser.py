"""End to end in Debian's chromium, as a visitor sees the app (issue 15's checks).

On a benchmark scene with four methods (GAP-TV and three bit widths of one trained family):
each method's benchmark score from `checkpoints/manifest.json` is on its checkbox before anything
runs; after the run no caption is cut off (rendered text measured against its box), no two
labels of a chart overlap (bounding boxes of the rendered SVG text), a zoomed crop exists for
every method, one slider moves every method; an error stays readable on the status line after
15 s and leaves no error badge behind; Stop leaves a "stopped" note and the inputs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
from scripts.app_server import REPO, running_app  # noqa: E402

CHROMIUM = os.environ.get("QSCI_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"

if not Path(CHROMIUM).is_file():
    pytest.skip(f"no chromium at {CHROMIUM} (set QSCI_CHROMIUM)", allow_module_level=True)


def _manifest() -> dict:
    from qsci.zoo import read_manifest

    return read_manifest()


def _benchmark_scene() -> str:
    """A benchmark scene already on disk (no download in the test); drop8 first."""
    from qsci.scenes import list_scenes

    ready = [s.name for s in list_scenes() if s.kind == "benchmark" and s.available]
    if not ready:
        pytest.skip("no benchmark scene on disk (set QSCI_DATA_DIR)")
    return "drop8" if "drop8" in ready else ready[0]


def _bit_depths() -> list[str]:
    """Three trained networks of one family spanning its bit widths: highest, a middle one, lowest."""
    from qsci.zoo import checkpoints_dir

    models = [m for m in _manifest().get("models", []) if (checkpoints_dir() / m["file"]).is_file()]
    if not models:
        pytest.skip("no trained checkpoint in checkpoints/manifest.json")
    family = models[0]["name"].rsplit("-", 1)[0]  # e.g. qsci-t
    same = sorted((m for m in models if m["name"].rsplit("-", 1)[0] == family), key=lambda m: -int(m["bits"]))
    if len(same) < 3:
        pytest.skip(f"fewer than three trained bit widths of {family}")
    return [same[0]["name"], same[len(same) // 2]["name"], same[-1]["name"]]


def _expected_scores(methods: list[str]) -> dict[str, str]:
    """The score text each checkbox must show, read from the manifest here (not from the app)."""
    m = _manifest()
    out = {}
    gap = (m.get("gap_tv") or {}).get("quantized_sci", {}).get("mean", {}).get("psnr")
    if gap is not None:
        out["gap-tv"] = f"{gap:.2f} dB"
    for e in m.get("models", []):
        if e["name"] in methods:
            psnr = e.get("metrics", {}).get("quantized_sci", {}).get("mean", {}).get("psnr")
            if psnr is not None:
                out[e["name"]] = f"{psnr:.2f} dB"
    return out


_CLIPPED_JS = """
(els) => els.filter(e => e.offsetParent !== null).map(e => {
  const box = e.getBoundingClientRect();
  const range = document.createRange();
  range.selectNodeContents(e);
  const text = range.getBoundingClientRect();
  const clipped = e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1
    || text.right > box.right + 1 || text.bottom > box.bottom + 1 || text.left < box.left - 1;
  return {text: (e.innerText || e.textContent || '').trim(), clipped, width: box.width, textWidth: text.width};
})
"""

_LABEL_BOXES_JS = """
(root) => {
  const sel = ['.annotation-text', '.legendtext', '.legendtitletext', '.gtitle', '.xtitle', '.ytitle',
               '.xtick text', '.ytick text'];
  const out = [];
  for (const s of sel) for (const e of root.querySelectorAll(s)) {
    const r = e.getBoundingClientRect();
    if (r.width > 0 && r.height > 0 && (e.textContent || '').trim())
      out.push({kind: s, text: e.textContent.trim(), x0: r.left, y0: r.top, x1: r.right, y1: r.bottom});
  }
  return out;
}
"""


def _overlaps(boxes: list[dict], tol: float = 1.0) -> list[tuple[str, str]]:
    bad = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if (min(a["x1"], b["x1"]) - max(a["x0"], b["x0"]) > tol
                    and min(a["y1"], b["y1"]) - max(a["y0"], b["y0"]) > tol):
                bad.append((a["text"], b["text"]))
    return bad


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    # as a visitor sees it: no untrained architectures in the list
    with running_app(tmp_path_factory.mktemp("app") / "server.log", QSCI_APP_SHOW_UNTRAINED="0") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield b
        finally:
            b.close()


def _open(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)  # a loaded 2-core CI box is slow; nothing here is timed
    sync_api.expect.set_options(timeout=120_000)
    page.goto(app_url)
    page.wait_for_selector("#run-scene")
    return page


def _pick_scene(page, scene: str) -> None:
    page.locator("#scene input").click()
    page.get_by_role("option", name=re.compile(r"^" + re.escape(scene) + r"\b")).first.click()


def test_bit_depth_comparison_on_a_benchmark_scene(app_url, browser):
    scene, nets = _benchmark_scene(), _bit_depths()
    methods = ["gap-tv", *nets]
    expect = sync_api.expect
    ARTIFACTS.mkdir(exist_ok=True)
    page = _open(browser, app_url)
    try:
        # 1. the benchmark score of every method is on its checkbox before anything runs
        scores = _expected_scores(methods)
        assert set(scores) == set(methods), f"manifest has no benchmark score for {set(methods) - set(scores)}"
        for m, text in scores.items():
            label = page.locator("#methods label").filter(has=page.locator(f'input[name="{m}"]'))
            expect(label).to_contain_text(text)
        expect(page.locator("#method-note")).to_contain_text("GAP-TV is the classical baseline")

        _pick_scene(page, scene)
        page.locator("#scene-which").get_by_text("first only (quick)").click()
        for box in page.locator("#methods input[type=checkbox]").all():
            box.uncheck()  # start from nothing: the app preselects its recommended comparison
        for m in methods:
            page.locator(f'#methods input[name="{m}"]').check()
        checked = page.locator("#methods input:checked").evaluate_all("els => els.map(e => e.name)")
        assert checked == methods, f"clicked {methods}, the Methods checkboxes show {checked}"
        page.locator("#run-scene").click()

        summary = page.locator("#summary")
        for m in methods:
            expect(summary).to_contain_text(m, timeout=240_000)
        expect(page.locator("#status")).to_contain_text("Done")
        tiles = page.locator("#qsci-tiles figure")
        expect(tiles).to_have_count(1 + len(methods))  # ground truth + methods

        # 2. a zoomed crop of the same region for every method (and the ground truth)
        crops = page.locator("#qsci-crops figure")
        expect(crops).to_have_count(1 + len(methods))
        crop_names = [crops.nth(k).get_attribute("data-method") for k in range(1 + len(methods))]
        for m in methods:
            assert any(n.split(" ")[0] == m for n in crop_names), (m, crop_names)
        sizes = {tuple(crops.nth(k).locator("img").evaluate("i => [i.naturalWidth, i.naturalHeight]"))
                 for k in range(1 + len(methods))}
        assert len(sizes) == 1, f"crops differ in size: {sizes}"
        expect(page.locator("#qsci-errors .qsci-cbar")).to_be_visible()  # error maps have a scale
        expect(page.locator("#qsci-errors figure")).to_have_count(len(methods))

        # tiles at least native size (256 px for the 256x256 benchmark)
        widths = page.locator("#qsci-tiles img").evaluate_all("els => els.map(e => [e.clientWidth, e.naturalWidth])")
        assert all(shown >= natural for shown, natural in widths), widths

        # 3. no caption is cut off: tiles, crops, error maps, method checkboxes
        expect(page.locator("#plot-ops .js-plotly-plot")).to_be_visible(timeout=30_000)
        expect(page.locator("#plot-time .js-plotly-plot")).to_be_visible(timeout=30_000)
        captions = page.locator("#results figcaption, #methods label span").evaluate_all(_CLIPPED_JS)
        assert len(captions) >= 3 * len(methods)
        clipped = [c for c in captions if c["clipped"]]
        assert not clipped, clipped
        for m in methods:
            assert any(c["text"].startswith(m) for c in captions), m

        # 4. chart labels do not overlap, and each chart says what its series are
        for plot in ("#plot-ops", "#plot-time"):
            boxes = page.locator(f"{plot} .js-plotly-plot").evaluate(_LABEL_BOXES_JS)
            assert len(boxes) >= 6, boxes
            assert not _overlaps(boxes), (plot, _overlaps(boxes))
        expect(page.locator("#plot-ops")).to_contain_text("six scenes")
        legend = page.locator("#plot-ops .legendtext").all_text_contents()
        assert all(any(t.startswith(m) for t in legend) for m in methods), legend  # GAP-TV: a legend line
        ticks = page.locator("#plot-ops .xtick text").all_text_contents()
        assert ticks and all(re.fullmatch(r"10-?\d+", re.sub(r"[\u200b\s]", "", t).replace("\u2212", "-")) for t in ticks), ticks  # 10^k only

        # click to enlarge, click again to close
        first = tiles.nth(1)
        first.locator("img").click()
        expect(first).to_have_class(re.compile(r"\bqsci-zoomed\b"))
        assert first.locator("img").evaluate("i => i.clientWidth") > 256
        first.locator("img").click()
        expect(first).not_to_have_class(re.compile(r"\bqsci-zoomed\b"))

        # one slider moves every method to the same frame
        number = page.locator("#frame input[type=number]")
        number.fill("5")
        number.press("Enter")
        expect(page.locator("#qsci-tiles")).to_contain_text("Frame 5")

        page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)
        # the README's picture: from the results' summary line down to the compute chart
        top = page.locator("#scene-info").bounding_box()["y"] + page.evaluate("window.scrollY")
        bottom = page.locator("#plot-ops").bounding_box()
        bottom = bottom["y"] + bottom["height"] + page.evaluate("window.scrollY")
        page.screenshot(path=str(ARTIFACTS / "results.png"), full_page=True,
                        clip={"x": 0, "y": top - 10, "width": 1400, "height": bottom - top + 20})
    finally:
        page.close()
    assert (ARTIFACTS / "app.png").stat().st_size > 10_000
    if os.environ.get("QSCI_UPDATE_SCREENSHOT"):  # smaller, 256 colours
        from PIL import Image

        im = Image.open(ARTIFACTS / "results.png").convert("RGB")
        im = im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.LANCZOS)
        # 192 grey levels (the pictures) + 64 colours (charts, maps): no banding, no lost colours
        greys = [round(k * 255 / 191) for k in range(192) for _ in range(3)]
        colours = im.quantize(64, method=Image.Quantize.FASTOCTREE).getpalette()[:64 * 3]
        palette = Image.new("P", (1, 1))
        palette.putpalette(greys + colours)
        im = im.quantize(palette=palette, dither=Image.Dither.NONE)
        im.save(REPO / "assets" / "screenshot.png", optimize=True)


def test_an_error_stays_on_the_status_line_without_error_badges(app_url, browser):
    expect = sync_api.expect
    page = _open(browser, app_url)
    try:
        for box in page.locator("#methods input[type=checkbox]").all():
            box.uncheck()
        page.locator("#run-scene").click()
        status = page.locator("#status")
        expect(status).to_contain_text("select at least one method")
        page.wait_for_timeout(15_000)  # the toast used to vanish after ~10 s
        expect(status).to_contain_text("select at least one method")
        expect(status.locator(".qsci-status.error")).to_be_visible()
        badges = page.locator(".error").filter(has_text=re.compile(r"^\s*Error\s*$"))
        assert badges.count() == 0

        # upload feedback as soon as one file arrives (the project's own example measurement)
        from ui.examples import listed

        rows = listed()
        if rows:
            page.get_by_role("tab", name="Upload").click()
            page.locator("#up-meas input[type=file]").set_input_files(rows[0][0])
            info = page.locator("#up-info")
            expect(info).to_contain_text(Path(rows[0][0]).name)
            expect(info).to_contain_text("measurements of 64x64")
            expect(info).to_contain_text("Next: upload its mask")
    finally:
        page.close()


def test_stop_keeps_a_note_and_the_inputs(app_url, browser):
    scene = _benchmark_scene()
    expect = sync_api.expect
    page = _open(browser, app_url)
    try:
        _pick_scene(page, scene)  # every trained network of the family: long enough to stop
        nets = _bit_depths()
        for net in nets:
            page.locator(f'#methods input[name="{net}"]').check()
        net = nets[0]
        page.locator("#run-scene").click()
        expect(page.locator("#status")).to_contain_text("Running")
        page.locator("#stop").click()
        expect(page.locator("#status")).to_contain_text("Stopped")
        expect(page.locator("#scene input")).to_have_value(re.compile(re.escape(scene)))
        expect(page.locator(f'#methods input[name="{net}"]')).to_be_checked()
        expect(page.locator('#methods input[name="gap-tv"]')).to_be_checked()
    finally:
        page.close()
