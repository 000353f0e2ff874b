"""The launched app through `gradio_client`: every input path, the stable API and error messages."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from scripts.app_server import running_app  # noqa: E402
from qsci.errors import QSCIError  # noqa: E402

SCENE = "embedded-camera-pan"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    log = tmp_path_factory.mktemp("app") / "server.log"
    with running_app(log, QSCI_APP_MAX_FILE_SIZE="1mb") as url:
        yield Client(url, verbose=False)


@pytest.fixture(scope="module")
def upload_files(tmp_path_factory):
    """A tiny coded clip (2 x 8 frames of 32x32) as .npy measurement, mask and ground truth."""
    from qsci.scenes import simulate_scene

    d = tmp_path_factory.mktemp("upload")
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    frames = np.stack([0.5 + 0.4 * np.sin(6 * xx + 0.3 * t) * np.cos(4 * yy) for t in range(16)]).astype(np.float32)
    scene = simulate_scene(frames, cr=8, mask="random", seed=3)
    np.save(d / "meas.npy", scene.meas)
    np.save(d / "mask.npy", scene.mask)
    np.save(d / "gt.npy", frames)
    (d / "broken.npy").write_bytes(b"this is not an array")
    np.save(d / "mask_small.npy", scene.mask[:, :16, :16])
    return d


def _app_error_text(excinfo) -> str:
    return str(excinfo.value)


def test_stable_endpoints_are_published_and_ui_events_are_not(client):
    api = client.view_api(print_info=False, return_format="dict")
    names = api["named_endpoints"]
    assert set(names) == {"/reconstruct_scene", "/reconstruct_upload", "/reconstruct_simulated", "/inspect_upload"}
    assert not api.get("unnamed_endpoints")
    sim = names["/reconstruct_simulated"]
    assert [r["component"] for r in sim["returns"]] == ["Json"]  # documented JSON, not raw UI updates
    video = next(p for p in sim["parameters"] if p["label"].startswith("video_file"))
    assert video["parameter_has_default"]  # optional: an embedded clip is used without it


def test_reconstruct_scene_returns_scores_and_keeps_going_after_a_bad_method(client):
    out = client.predict(SCENE, ["gap-tv", "no-such-method"], api_name="/reconstruct_scene")
    assert set(out) == {"gap-tv", "no-such-method"}
    gap = out["gap-tv"]
    assert isinstance(gap["psnr"], float) and gap["psnr"] > 15 and 0 < gap["ssim"] <= 1
    assert gap["seconds"] > 0
    assert out["no-such-method"]["psnr"] is None and "unknown method" in out["no-such-method"]["error"]
    again = client.predict(SCENE, ["gap-tv"], api_name="/reconstruct_scene")  # cached: same scores
    assert again["gap-tv"]["psnr"] == gap["psnr"]


def test_unknown_scene_is_a_readable_error_and_the_app_survives(client):
    with pytest.raises(Exception) as excinfo:
        client.predict("no-such-scene", ["gap-tv"], api_name="/reconstruct_scene")
    text = _app_error_text(excinfo)
    assert "unknown scene 'no-such-scene'" in text and "Traceback" not in text
    assert client.predict(SCENE, ["gap-tv"], api_name="/reconstruct_scene")["gap-tv"]["psnr"] > 15


def test_upload_with_ground_truth(client, upload_files):
    d = upload_files
    scores, files = client.predict(handle_file(str(d / "meas.npy")), handle_file(str(d / "mask.npy")),
                                   handle_file(str(d / "gt.npy")), ["gap-tv"], api_name="/reconstruct_upload")
    assert scores["gap-tv"]["psnr"] > 10
    assert len(files) == 1 and str(files[0]).endswith(".npz")
    recon = np.load(files[0])["recon"]
    assert recon.shape[-3:] == (8, 32, 32)


def test_upload_without_ground_truth_has_no_scores(client, upload_files):
    d = upload_files
    scores, _ = client.predict(handle_file(str(d / "meas.npy")), handle_file(str(d / "mask.npy")), None,
                               ["gap-tv"], api_name="/reconstruct_upload")
    assert scores["gap-tv"]["psnr"] is None and scores["gap-tv"]["seconds"] >= 0


@pytest.mark.parametrize("meas, mask", [("broken.npy", "mask.npy"), ("meas.npy", "mask_small.npy")])
def test_bad_upload_shows_the_library_message(client, upload_files, meas, mask):
    from qsci.scenes import scene_from_files

    d = upload_files
    with pytest.raises(QSCIError) as expected:  # what the library says about these files
        scene_from_files(d / meas, d / mask)
    with pytest.raises(Exception) as excinfo:
        client.predict(handle_file(str(d / meas)), handle_file(str(d / mask)), None, ["gap-tv"],
                       api_name="/reconstruct_upload")
    text = _app_error_text(excinfo)
    # Uploaded files keep their names, so the message matches the library's own, file name included.
    assert str(expected.value) in text, text
    assert "Traceback" not in text


def test_simulate_an_embedded_clip(client):
    scores = client.predict(None, SCENE, "random", 5, 8, 0.01, 64, ["gap-tv"], api_name="/reconstruct_simulated")
    assert set(scores) == {"gap-tv"} and scores["gap-tv"]["psnr"] > 10 and scores["gap-tv"]["seconds"] > 0


def test_simulate_rejects_a_mask_that_does_not_fit(client):
    with pytest.raises(Exception) as excinfo:
        client.predict(None, SCENE, "quantized_sci", 0, 8, 0.0, 64, ["gap-tv"], api_name="/reconstruct_simulated")
    assert "does not match the scene size" in _app_error_text(excinfo)


def test_inspect_upload_shows_ratio_size_and_axis_order(client, upload_files):
    d = upload_files
    info = client.predict(handle_file(str(d / "meas.npy")), handle_file(str(d / "mask.npy")), None,
                          api_name="/inspect_upload")
    assert (info["cr"], info["height"], info["width"], info["measurements"]) == (8, 32, 32, 2)
    assert info["ground_truth"] is False and info["axis_order"]


def test_uploads_over_the_size_limit_are_refused(client, upload_files):
    big = upload_files / "big.npy"
    np.save(big, np.zeros((8, 256, 256), np.float32))  # 2 MiB > the 1 MB limit of the test server
    with pytest.raises(Exception) as excinfo:
        client.predict(handle_file(str(big)), handle_file(str(upload_files / "mask.npy")), None, ["gap-tv"],
                       api_name="/reconstruct_upload")
    assert "size" in _app_error_text(excinfo).lower()
