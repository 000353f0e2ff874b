import numpy as np
import pytest

from qsci.engine import reconstruct
from qsci.errors import QSCIError
from qsci.scenes import load_scene
from qsci.zoo import get_method, list_methods


def test_gap_tv_through_engine_scores_against_gt():
    sc = load_scene("drop8")
    calls = []
    res = reconstruct(sc.meas, sc.mask, "gap-tv", gt=sc.gt, progress=lambda f, m: calls.append(f))
    assert res.frames.shape == (1, 8, 256, 256) and res.frames.dtype == np.float32
    assert len(res.psnr) == 8 and len(res.ssim) == 8
    assert res.psnr_mean > 30.0 and 0.8 < res.ssim_mean <= 1.0
    assert res.seconds > 0 and res.backend
    assert calls and calls[-1] == pytest.approx(1.0)


def test_engine_rejects_mismatched_inputs():
    mask = np.ones((8, 32, 32), np.float32)
    with pytest.raises(QSCIError, match="does not match mask size"):
        reconstruct(np.zeros((1, 16, 32), np.float32), mask, "gap-tv")
    with pytest.raises(QSCIError, match="ground truth shape"):
        reconstruct(np.zeros((1, 32, 32), np.float32), mask, "gap-tv", gt=np.zeros((3, 32, 32)))
    with pytest.raises(QSCIError, match="unknown method 'nope'"):
        reconstruct(np.zeros((1, 32, 32), np.float32), mask, "nope")


def test_model_list_sources():
    methods = list_methods()
    assert methods[0].name == "gap-tv" and methods[0].source == "classical"
    official = [m for m in methods if m.source == "official"]
    assert {m.name for m in official} == {
        "official-s-fp32", "official-s-8bit", "official-s-4bit", "official-s-3bit", "official-s-2bit", "official-b-fp32"}
    assert get_method("qsci-t-4bit").bits == 4


def test_random_weight_network_runs_through_engine():
    rng = np.random.default_rng(0)
    mask = (rng.random((8, 32, 32)) > 0.5).astype(np.float32)
    meas = rng.random((2, 32, 32)).astype(np.float32) * 4
    res = reconstruct(meas, mask, "qsci-s-fp32")  # an architecture with no shipped weights
    assert res.frames.shape == (2, 8, 32, 32) and res.weights == "random" and res.backend == "fp32"
    assert np.isfinite(res.frames).all()


def test_a_runner_or_a_model_in_memory_gives_what_its_file_gives(tmp_path):
    """Training evaluates in memory: the same frames, backend and scores as through a saved file."""
    import torch

    from qsci.deploy.weights import load_model
    from qsci.evaluate import evaluate
    from qsci.models import create_model
    from qsci.models.checkpoints import save_model
    from qsci.runners import NetworkRunner

    torch.manual_seed(0)
    model = create_model("qsci-t-4bit", units=1, per_channel_act=False)
    model(torch.rand(1, 1, 8, 16, 16))  # initialise the quantizer steps
    path = save_model(tmp_path / "m.pth", model)
    rng = np.random.default_rng(0)
    mask = (rng.random((8, 16, 16)) > 0.5).astype(np.float32)
    gt = rng.random((8, 16, 16)).astype(np.float32)
    meas = (mask * gt).sum(0)
    by_file = reconstruct(meas, mask, "qsci-t-4bit", gt=gt, checkpoint=path)
    by_model = reconstruct(meas, mask, load_model(path), gt=gt)
    runner = NetworkRunner("mine", load_model(path))
    by_runner = reconstruct(meas, mask, runner, gt=gt)
    assert np.array_equal(by_file.frames, by_model.frames) and np.array_equal(by_file.frames, by_runner.frames)
    assert by_file.psnr == by_model.psnr == by_runner.psnr
    assert by_file.backend == by_model.backend == by_runner.backend == "int8"
    assert (by_file.method, by_model.method, by_runner.method) == ("qsci-t-4bit", "qsci-t-4bit", "mine")
    with pytest.raises(QSCIError, match="checkpoint= goes with a method name"):
        reconstruct(meas, mask, runner, checkpoint=path)
    with pytest.raises(QSCIError, match="runs on int8, not fakequant"):
        reconstruct(meas, mask, runner, backend="fakequant")
    with pytest.raises(QSCIError, match="a method is a name, a runner or a network"):
        reconstruct(meas, mask, 42)

    def scores(result: dict) -> tuple:
        return ({k: (v["psnr"], v["ssim"]) for k, v in result["scenes"].items()}, result["mean"],
                result["backend"], result["mask"])

    in_memory = evaluate(runner, ["drop8"])
    assert in_memory["model"] == "mine"
    assert scores(in_memory) == scores(evaluate("qsci-t-4bit", ["drop8"], checkpoint=path)) \
        == scores(evaluate(load_model(path), ["drop8"]))
