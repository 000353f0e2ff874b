"""The GAP-TV warm-start family: initial estimate, global residual, data-consistency step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qsci.errors import QSCIError
from qsci.models import ModelConfig, create_model, init_from_fp
from qsci.models.efficientsci import zero_last_layer
from qsci.physics import SCIOperator, random_binary_mask
from qsci import runners
from qsci.runners import NetworkRunner
from qsci.solvers import gap_tv
from qsci.solvers.initial import initial_estimate
from training.config import TrainConfig
from training.data import ClipDataset

TINY = dict(in_ch=8, units=1)


def _scene(t=8, h=32, w=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((t, h, w), dtype=np.float32)
    mask = random_binary_mask(t, h, w, seed=seed)
    return x, mask, (x * mask).sum(0)


@pytest.mark.parametrize("bits,tag", [(32, "fp32"), (8, "8bit"), (4, "4bit"), (2, "2bit")])
def test_family_names_and_settings(bits, tag):
    model = create_model(f"qsci-t-gap-{tag}", **TINY)
    cfg = model.config
    assert cfg.name == f"qsci-t-gap-{tag}" and cfg.bits == bits
    assert (cfg.init, cfg.init_iters, cfg.residual, cfg.dc, cfg.per_channel_act) == ("gaptv", 40, True, True, False)
    # the paper's networks keep the paper's input and no residual
    plain = create_model(f"qsci-t-{tag}", **TINY).config
    assert (plain.init, plain.residual, plain.dc, plain.name) == ("measurement", False, False, f"qsci-t-{tag}")


def test_config_rejects_unknown_initial_estimate():
    with pytest.raises(QSCIError, match="init must be one of"):
        ModelConfig(preset="t", init="fbp")
    with pytest.raises(QSCIError, match="init_iters"):
        ModelConfig(preset="t", init="gaptv", init_iters=0)
    # configs stored before the warm-start fields existed still load (defaults = the paper's net)
    old = {k: v for k, v in ModelConfig(preset="t").to_dict().items()
           if k not in ("init", "init_iters", "residual", "dc")}
    assert ModelConfig.from_dict(old).init == "measurement"


def test_zero_last_layer_makes_the_residual_network_the_identity():
    torch.manual_seed(0)
    model = create_model("qsci-t-gap-fp32", **TINY).eval()
    x0 = torch.rand(1, 1, 8, 16, 16)
    assert not torch.equal(model(x0), x0[:, 0])
    zero_last_layer(model)
    assert torch.equal(model(x0), x0[:, 0])


def test_initial_estimates():
    x, mask, y = _scene()
    meas = initial_estimate(y, mask, "measurement")
    assert torch.equal(meas, SCIOperator(mask).network_input(y))
    gap = initial_estimate(np.stack([y, 0.5 * y]), mask, "gaptv", iters=7)
    assert gap.shape == (2, 1, 8, 32, 32)
    np.testing.assert_array_equal(gap[1, 0].numpy(), gap_tv(0.5 * y, mask, iters=7))
    with pytest.raises(QSCIError, match="unknown initial estimate"):
        initial_estimate(y, mask, "zeros")


def test_projection_restores_the_measurement_on_a_non_binary_mask():
    rng = np.random.default_rng(3)
    mask = rng.uniform(0.1, 1.0, (4, 8, 8)).astype(np.float32)
    op = SCIOperator(mask)
    x = rng.random((4, 8, 8), dtype=np.float32)
    y = op.A(rng.random((4, 8, 8), dtype=np.float32))
    p = op.project(x, y)
    np.testing.assert_allclose(op.A(p), y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(op.project(p, y), p, rtol=1e-5, atol=1e-6)  # a projection
    # by hand, pixel (0, 0): x + phi * (y - sum phi x) / sum phi^2
    phi = mask[:, 0, 0]
    want = x[:, 0, 0] + phi * (y[0, 0] - (phi * x[:, 0, 0]).sum()) / (phi * phi).sum()
    np.testing.assert_allclose(p[:, 0, 0], want, rtol=1e-5)


def test_runner_starts_exactly_at_the_projected_gap_tv_result(one_torch_thread):
    x, mask, y = _scene()
    model = create_model("qsci-t-gap-fp32", **TINY)
    zero_last_layer(model)
    out = NetworkRunner("warm", model, backend="fp32")(y[None], mask)  # (1, T, H, W)
    op = SCIOperator(mask)
    want = op.project(gap_tv(y, mask, iters=40), y)
    np.testing.assert_allclose(out[0], want, atol=1e-6)
    np.testing.assert_allclose(op.A(out[0]), y, rtol=1e-4, atol=1e-4)  # data-consistent


def test_qat_start_from_a_residual_parent_quiets_the_side_branches():
    torch.manual_seed(0)
    parent = create_model("qsci-t-gap-fp32", **TINY)
    torch.manual_seed(1)
    fresh = create_model("qsci-t-gap-4bit", **TINY)
    before = fresh.vrm_conv1_2[0].weight.detach().clone()
    report = init_from_fp(fresh, parent)
    assert "vrm_conv1_2.0.weight" in report["fresh"]
    torch.testing.assert_close(fresh.vrm_conv1_2[0].weight, 0.01 * before)
    torch.testing.assert_close(fresh.vrm_conv3_1.weight, parent.vrm[4].weight)  # main path copied
    # the paper's (non-residual) QAT start is unchanged: side branches keep their fresh init
    torch.manual_seed(1)
    plain = create_model("qsci-t-4bit", **TINY)
    init_from_fp(plain, create_model("qsci-t-fp32", **TINY))
    torch.testing.assert_close(plain.vrm_conv1_2[0].weight, before)


def test_training_samples_carry_the_models_initial_estimate():
    cfg = TrainConfig(data="images", crop=16, batch=1, motion=0.3)
    assert TrainConfig(family="gap", bits=4).model_name == "qsci-t-gap-4bit"
    x0_gap, x = ClipDataset(cfg, init=("gaptv", 5))[7]
    x0_meas, x_same = ClipDataset(cfg)[7]
    assert torch.equal(x, x_same)  # same clip and mask for the same index
    assert x0_gap.shape == x0_meas.shape == (1, 8, 16, 16)
    assert not torch.equal(x0_gap, x0_meas)
    err_gap = (x0_gap[0] - x).square().mean()
    err_meas = (x0_meas[0] - x).square().mean()
    assert err_gap < err_meas  # GAP-TV is the better start


def test_one_name_grammar_for_every_registered_model():
    from qsci.models import get_config, list_models
    from qsci.zoo import get_method

    for name in list_models():
        parts = ModelConfig.parse_name(name)
        cfg = get_config(name)
        assert (cfg.name, cfg.preset, cfg.family, cfg.bits) == (name, parts["preset"], parts["family"], parts["bits"])
    assert ModelConfig.parse_name("qsci-t-gap-3bit") == {"preset": "t", "family": "gap", "bits": 3}
    assert get_method("qsci-s-gap-2bit").bits == 2
    with pytest.raises(QSCIError, match="not a model name"):
        ModelConfig.parse_name("qsci-t-4bits")


def test_front_ends_default_to_the_best_measured_family(tmp_path, monkeypatch):
    import json

    from qsci import zoo

    def entry(name, bits, psnr):
        (tmp_path / f"{name}.pt").write_bytes(b"x")
        return {"name": name, "file": f"{name}.pt", "bits": bits, "preset": "t",
                "metrics": {"quantized_sci": {"mean": {"psnr": psnr}}}}

    def write(gap_fp):
        manifest = {"models": [entry("qsci-t-fp32", 32, 25.4), entry("qsci-t-gap-fp32", 32, gap_fp),
                               entry("qsci-t-4bit", 4, 20.7), entry("qsci-t-gap-4bit", 4, 29.4)],
                    "gap_tv": {"quantized_sci": {"mean": {"psnr": 30.13}}}}
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))

    monkeypatch.setenv("QSCI_CHECKPOINTS", str(tmp_path))
    write(30.89)
    assert zoo.best_per_bits() == {32: "qsci-t-gap-fp32", 4: "qsci-t-gap-4bit"}
    assert zoo.default_method() == "qsci-t-gap-fp32"
    assert zoo.default_comparison() == ["gap-tv", "qsci-t-gap-fp32", "qsci-t-gap-4bit"]
    write(29.0)  # no model of ours beats the classical baseline: GAP-TV is the default
    assert zoo.default_method() == "gap-tv"


def test_validation_scenes_score_like_the_cli_and_are_not_the_benchmark(one_torch_thread):
    """Training stages are chosen on the embedded clips, so the benchmark scenes stay a test set."""
    from qsci.data import EVAL_SCENES
    from qsci.evaluate import VALIDATION_SCENES, evaluate

    assert len(VALIDATION_SCENES) >= 5 and not set(VALIDATION_SCENES) & set(EVAL_SCENES)
    out = evaluate("gap-tv", ["embedded-moon-drift"], mask="quantized_sci")
    # measured: 36.80 dB (slow, smooth drift: GAP-TV does well); a broken simulation scores < 20
    assert out["scenes"]["embedded-moon-drift"]["psnr"] == pytest.approx(36.80, abs=0.05)
    with pytest.raises(QSCIError, match="unknown scene 'kobe-x'; choose from kobe.*embedded-moon-drift"):
        evaluate("gap-tv", ["kobe-x"])


def test_progress_moves_within_each_measurement(one_torch_thread, monkeypatch):
    """The bar moves after the initial estimate and after every network block, tiles included."""
    import qsci.runners as runners

    x, mask, y = _scene(h=48, w=48)
    model = create_model("qsci-t-gap-4bit", **TINY)
    n_blocks = len(model.progress_blocks())
    seen = []
    NetworkRunner("warm4", model, backend="fakequant")(np.stack([y, y]), mask, lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert len(seen) == 2 * (1 + n_blocks) + 1 and fractions == sorted(fractions)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert seen[1] == (pytest.approx(0.5 * (0.1 + 0.9 / n_blocks)), f"warm4: measurement 1/2, network block 1/{n_blocks}")
    assert seen[1 + n_blocks] == (0.5, "warm4: measurement 2/2, initial estimate")

    monkeypatch.setattr(runners, "tile_size_for", lambda t, h, w: 32)  # 48x48 -> 2x2 tiles of 32
    seen.clear()
    NetworkRunner("warm4", model, backend="fakequant")(y[None], mask, lambda f, m: seen.append((f, m)))
    assert len(seen) == 1 + 4 * n_blocks + 1
    assert seen[-2][1] == f"warm4: measurement 1/1, network block {4 * n_blocks}/{4 * n_blocks}"
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)


def test_runners_build_their_kernels_once_per_shape_before_the_clock_starts(one_torch_thread, monkeypatch):
    """First-use kernel building made the app's first measurement 1.2-2.3x `qsci bench`'s median."""
    from qsci.bench import calibrate
    from qsci.engine import reconstruct

    model = create_model("qsci-t-gap-4bit", **TINY)
    calibrate(model, (8, 16, 16), seed=0)
    calls, estimates = [], []
    monkeypatch.setattr(NetworkRunner, "forward", lambda self, x0: calls.append(tuple(x0.shape)) or x0[:, 0])
    real_estimate = runners.initial_estimate
    monkeypatch.setattr(runners, "initial_estimate", lambda *a, **k: estimates.append(1) or real_estimate(*a, **k))
    for backend, m in (("int8", model), ("fp32", create_model("qsci-t-gap-fp32", **TINY))):
        calls.clear(), estimates.clear()
        runner = NetworkRunner("w", m, backend=backend)
        assert calls == []  # nothing at construction
        runner.prepare((8, 48, 48))
        runner.prepare((8, 48, 48))
        assert calls == [(1, 1, 8, 48, 48)] and estimates == [1]  # the whole call (GAP-TV too), once per shape
    monkeypatch.setattr("qsci.runners.tile_size_for", lambda t, h, w: 32)
    calls.clear()
    x, mask, y = _scene(h=48, w=48)
    reconstruct(y, mask, NetworkRunner("w", create_model("qsci-t-gap-fp32", **TINY), backend="fp32"))
    assert calls[0] == (1, 1, 8, 32, 32) and len(calls) == 1 + 4  # the tile shape first, then 2x2 tiles
