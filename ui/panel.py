"""The results panel as one HTML block: large tiles with full captions, a zoomed crop, error maps.

Pictures are PNG data URIs, shown at least at native size (small clips are enlarged with
pixelated rendering); captions sit under the picture and wrap, so they are never cut off.
The zoomed crop is the same region for every method, chosen once per frame where the
reference frame has the most detail, and outlined on the first tile. Error maps get a colour
bar with the fixed scale `views.ERROR_VMAX`. Without ground truth the panel says why there are
no scores and no error maps instead of leaving a blank box.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from ui import views

#: Displayed width of a tile: native size, enlarged up to this for small clips.
MIN_TILE_PX = 256
NO_GT_REASON = "No ground truth for this input: no PSNR/SSIM and no error maps (reconstructions only)."
BOX_RGB = (0, 200, 255)

CSS = """
.qsci-results h4 { margin: 14px 0 6px 0; font-size: 15px; }
.qsci-grid { display: flex; flex-wrap: wrap; gap: 12px 6px; align-items: flex-start; }
.qsci-tile { margin: 0; cursor: zoom-in; }
.qsci-tile img { display: block; max-width: 100%; height: auto; image-rendering: pixelated;
                 outline: 1px solid #8884; }
.qsci-tile figcaption { font-size: 13px; line-height: 1.35; margin-top: 4px; white-space: normal;
                        overflow-wrap: anywhere; overflow: visible; }
.qsci-tile.qsci-zoomed { position: fixed; inset: 2vh 2vw; z-index: 1000; background: #000d; color: #fff;
                         display: flex; flex-direction: column; align-items: center; justify-content: center;
                         cursor: zoom-out; padding: 10px; }
.qsci-tile.qsci-zoomed img { width: auto !important; height: 85vh; max-width: 95vw; }
.qsci-reason { padding: 8px 12px; border-left: 4px solid #e0a000; background: #e0a00018; margin: 6px 0; }
.qsci-cbar { display: flex; align-items: center; gap: 8px; font-size: 13px; margin: 2px 0 8px 0; }
.qsci-cbar .bar { width: 260px; height: 14px; border: 1px solid #8886; }
.qsci-cbar .ticks { display: flex; justify-content: space-between; width: 260px; font-size: 12px; }
"""

#: Click a picture to enlarge it; click again to close (Gradio 6 `gr.HTML(js_on_load=...)`).
JS_ON_LOAD = """
element.addEventListener('click', (e) => {
  const fig = e.target.closest('figure.qsci-tile');
  if (fig) fig.classList.toggle('qsci-zoomed');
});
"""


def png_uri(img: np.ndarray) -> str:
    """A uint8 grayscale or RGB array as a PNG data URI."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", compress_level=3)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def crop_box(ref: np.ndarray, size: int | None = None) -> tuple[int, int, int]:
    """(top, left, side) of the square window with the most detail (gradient energy) in `ref`.

    Searched on a grid of a quarter of the side; ties go to the top-left, so the choice is
    deterministic. The side defaults to a quarter of the shorter edge (64 px for 256×256).
    """
    ref = np.nan_to_num(np.asarray(ref, dtype=np.float64))
    h, w = ref.shape
    side = int(size or max(8, min(h, w) // 4))
    side = max(1, min(side, h, w))
    gy, gx = np.gradient(ref) if min(h, w) > 1 else (np.zeros_like(ref), np.zeros_like(ref))
    energy = np.abs(gx) + np.abs(gy)
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, side // 4)
    best, where = -1.0, (0, 0)
    for top in range(0, h - side + 1, step):
        for left in range(0, w - side + 1, step):
            s = (integral[top + side, left + side] - integral[top, left + side]
                 - integral[top + side, left] + integral[top, left])
            if s > best + 1e-12:
                best, where = s, (top, left)
    return where[0], where[1], side


def outline(img: np.ndarray, box: tuple[int, int, int], rgb=BOX_RGB) -> np.ndarray:
    """An RGB copy of `img` with the crop box drawn (2 px where the picture allows)."""
    out = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img.copy()
    top, left, side = box
    t = 2 if side > 8 else 1
    y1, x1 = top + side, left + side
    color = np.array(rgb, dtype=np.uint8)
    out[top:top + t, left:x1] = color
    out[max(y1 - t, top):y1, left:x1] = color
    out[top:y1, left:left + t] = color
    out[top:y1, max(x1 - t, left):x1] = color
    return out


def _zoom_for(side: int) -> int:
    return max(2, MIN_TILE_PX // max(side, 1))


def _tile(img: np.ndarray, title: str, detail: str = "", scale: int = 1, kind: str = "tile") -> str:
    h, w = img.shape[:2]
    width = w * scale
    cap = f"<b>{html.escape(title)}</b>" + (f"<br>{html.escape(detail)}" if detail else "")
    return (f'<figure class="qsci-tile qsci-{kind}" style="width:{width}px;max-width:100%" '
            f'data-method="{html.escape(title, quote=True)}">'
            f'<img src="{png_uri(img)}" width="{width}" height="{h * scale}" alt="{html.escape(title, quote=True)}">'
            f"<figcaption>{cap}</figcaption></figure>")


def colour_bar(vmax: float = views.ERROR_VMAX, cmap: str = "inferno", ticks: int = 5) -> str:
    """A horizontal colour bar (CSS gradient from the same lookup table as the maps) with ticks."""
    lut = views.colorize(np.linspace(0.0, vmax, 9), vmax, cmap)
    stops = ", ".join(f"rgb({r},{g},{b}) {100 * k / 8:.1f}%" for k, (r, g, b) in enumerate(lut))
    labels = [f"{vmax * k / (ticks - 1):.2f}" for k in range(ticks)]
    labels[-1] = "≥ " + labels[-1]
    tick_html = "".join(f"<span>{t}</span>" for t in labels)
    return (f'<div class="qsci-cbar"><span>|error|</span><div><div class="bar" '
            f'style="background: linear-gradient(to right, {stops})"></div>'
            f'<div class="ticks">{tick_html}</div></div><span>(frames on a 0…1 scale)</span></div>')


def results_html(
    gt: np.ndarray | None,
    recons: dict[str, np.ndarray],
    index: float | int | None,
    scores: dict[str, tuple[list[float] | None, list[float] | None]] | None = None,
    labels: dict[str, str] | None = None,
    vmax: float = views.ERROR_VMAX,
) -> str:
    """Tiles, zoomed crops and error maps of every method at one flat frame index."""
    scores, labels = scores or {}, labels or {}
    if not recons:
        return ""
    counts = [views.frame_count(f) for f in recons.values()] + ([views.frame_count(gt)] if gt is not None else [])
    count = min(counts)
    i = views.clamp_index(index, count)
    ref = views.frame_at(gt, i) if gt is not None else views.frame_at(next(iter(recons.values())), i)
    h, w = ref.shape
    box = crop_box(ref)
    top, left, side = box
    scale = max(1, -(-MIN_TILE_PX // max(w, 1))) if w < MIN_TILE_PX else 1
    zoom = _zoom_for(side)

    named: list[tuple[str, str, np.ndarray]] = []  # (title, detail, float frame)
    if gt is not None:
        named.append(("ground truth", f"frame {i} of {count}", views.frame_at(gt, i)))
    for name, frames in recons.items():
        psnrs, ssims = scores.get(name, (None, None))
        bits = []
        if psnrs is not None and 0 <= i < len(psnrs):
            bits.append(f"{psnrs[i]:.2f} dB")
        if ssims is not None and 0 <= i < len(ssims):
            bits.append(f"SSIM {ssims[i]:.3f}")
        detail = " · ".join(bits) + (" (this frame)" if bits else f"frame {i} of {count}")
        title = f"{name} · {labels[name]}" if labels.get(name) else name
        named.append((title, detail, views.frame_at(frames, i)))

    tiles, crops = [], []
    for k, (title, detail, frame) in enumerate(named):
        img = views.to_uint8(frame)
        tiles.append(_tile(outline(img, box) if k == 0 else img, title, detail, scale))
        crops.append(_tile(img[top:top + side, left:left + side], title, "", zoom, kind="crop"))
    parts = [
        '<div class="qsci-results">',
        f'<section id="qsci-tiles"><h4>Frame {i} of {count}: every method at the same frame '
        "(click a picture to enlarge)</h4>",
        f'<div class="qsci-grid">{"".join(tiles)}</div></section>',
        f'<section id="qsci-crops"><h4>Zoomed crop ×{zoom}: rows {top}–{top + side - 1}, columns '
        f"{left}–{left + side - 1} — the same region for every method (outlined on the first picture)</h4>",
        f'<div class="qsci-grid">{"".join(crops)}</div></section>',
        '<section id="qsci-errors">',
    ]
    if gt is None:
        parts.append(f'<p class="qsci-reason">{html.escape(NO_GT_REASON)}</p>')
    else:
        gt_frame = views.frame_at(gt, i)
        maps = [_tile(views.error_map(gt_frame, views.frame_at(frames, i), vmax),
                      f"|error| {name}", "", scale, kind="error") for name, frames in recons.items()]
        parts += [f"<h4>Absolute error |reconstruction − ground truth| at frame {i}</h4>", colour_bar(vmax),
                  f'<div class="qsci-grid">{"".join(maps)}</div>']
    parts.append("</section></div>")
    return "".join(parts)
