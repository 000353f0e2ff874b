"""The status line under the Reconstruct buttons: one short HTML message that stays until the next run.

Errors are shown here instead of only in a toast (which vanishes after a few seconds) and
instead of marking every output with an error badge; a run that worked says so and names any
method that failed. Pure functions: HTML strings in, HTML strings out.
"""

from __future__ import annotations

import html

CSS = """
#status .qsci-status { padding: 8px 12px; border-radius: 6px; font-size: 14px; margin: 4px 0; }
#status .qsci-status.error { background: #d6272818; border-left: 5px solid #d62728; }
#status .qsci-status.ok { background: #2ca02c14; border-left: 5px solid #2ca02c; }
#status .qsci-status.stopped { background: #e0a00018; border-left: 5px solid #e0a000; }
#status .qsci-status.running, #status .qsci-status.idle, .qsci-note { background: #8881; border-left: 5px solid #888;
                                                        padding: 6px 10px; }
"""


def _box(kind: str, text_html: str) -> str:
    return f'<div class="qsci-status {kind}" data-kind="{kind}">{text_html}</div>'


def idle() -> str:
    return _box("idle", "Pick an input and methods, then press a Reconstruct button.")


def running() -> str:
    return _box("running", "▶ Running… (Stop ends it)")


def error(title: str, message: str) -> str:
    """One line: what could not be done and the library's message (kept until the next run)."""
    return _box("error", f"<b>✖ {html.escape(title)}:</b> {html.escape(message)}")


def stopped() -> str:
    return _box("stopped", "■ Stopped. Your inputs are kept and earlier results stay on the page; "
                           "press a Reconstruct button to run again.")


def note(text_html: str) -> str:
    return f'<div class="qsci-note">{text_html}</div>'


def done(run, seconds: float | None = None) -> str:
    """Success line; methods that failed are listed here (and in the table) with their message."""
    ok = [n for n in run.order if n in run.results]
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    text = f"✔ Done{took}: {len(ok)} of {len(run.order)} method(s) on <b>{html.escape(str(run.scene.name))}</b>."
    if run.scene.gt is None:
        text += " No ground truth: no PSNR/SSIM or error maps."
    if run.errors:
        failed = "; ".join(f"<b>{html.escape(n)}</b>: {html.escape(m)}" for n, m in run.errors.items())
        return _box("error", text + f" <br>✖ Failed: {failed}")
    return _box("ok", text)
