"""The "mse" first-step initialisation (our QAT extension): it must use the codes LSQ's rule
wastes, never be worse than LSQ on the tensor it calibrates on, and still run on int8 kernels."""

import pytest
import torch

from qsci.models import create_model
from qsci.quant.lsq import (ActQuantizer, QConv3d, fake_quant_act, init_weight_step, mse_act_params,
                            set_step_init, signed_range)
from training.config import TrainConfig


def _act_error(x, q: ActQuantizer) -> float:
    qmin, qmax = q.qrange()
    with torch.no_grad():
        return float((fake_quant_act(x, q.alpha, q.zero_point, qmin, qmax, q.ch_axis) - x).pow(2).mean())


def _calibrated(x, bits, method, per_channel=False, ch_axis=1):
    q = ActQuantizer(bits, x.shape[ch_axis] if per_channel else 1, per_channel=per_channel, ch_axis=ch_axis)
    q.step_init = method
    q(x)
    return q


def test_uniform_image_gets_every_code():
    # a [0, 1] image with a tiny negative (GAP-TV estimates have them): signed 4-bit range
    x = torch.rand(2, 1, 4, 32, 32)
    x[0, 0, 0, 0, 0] = -1e-3
    q = _calibrated(x, 4, "mse")
    assert q.signed.item() == 1
    step, zp, qmin, qmax = q.quant_params()
    assert zp.item() == qmin  # the real 0 sits on the lowest code, so no code is spent below it
    assert step.item() == pytest.approx(1 / 15, rel=0.15)
    lsq = _calibrated(x, 4, "lsq")
    assert lsq.alpha.item() > 3 * step.item()  # the paper's rule: ~4 of 16 codes cover [0, 1]


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_mse_never_worse_than_lsq_after_leaky_relu(bits):
    torch.manual_seed(bits)
    x = torch.nn.functional.leaky_relu(torch.randn(4, 16, 2, 16, 16) * 2, 0.01)
    mse, lsq = _calibrated(x, bits, "mse"), _calibrated(x, bits, "lsq")
    assert _act_error(x, mse) <= _act_error(x, lsq)
    if bits <= 4:
        assert _act_error(x, mse) < 0.5 * _act_error(x, lsq)


def test_per_channel_steps_follow_each_channel():
    x = torch.randn(64, 4, 8, 8) * torch.tensor([0.1, 1.0, 10.0, 3.0]).reshape(1, 4, 1, 1)
    step, zp = mse_act_params(x, -8, 7, ch_axis=1)
    assert step.shape == zp.shape == (4,)
    assert step[0] < step[3] < step[2] and step[0] < step[1] < step[2]


@pytest.mark.parametrize("bits", [2, 4])
def test_weight_steps_not_worse_than_lsq(bits):
    torch.manual_seed(0)
    w = torch.randn(8, 4, 3, 3, 3) * torch.linspace(0.01, 1, 8).reshape(8, 1, 1, 1, 1)
    qn, qp = signed_range(bits)

    def err(a):
        a = a.reshape(-1, 1, 1, 1, 1)
        return float(((w / a).round().clamp(qn, qp) * a - w).pow(2).mean())
    assert err(init_weight_step(w, bits, "mse")) <= err(init_weight_step(w, bits, "lsq"))


def test_set_step_init_reaches_every_quantizer_and_checks_the_name():
    model = create_model("qsci-t-4bit")
    n = set_step_init(model, "mse")
    layers = [m for m in model.modules() if isinstance(m, QConv3d)]
    assert layers and n > len(layers)
    assert all(m.step_init == "mse" and m.act.step_init == "mse" for m in layers)
    with pytest.raises(ValueError, match="step init must be one of"):
        set_step_init(model, "minmax")
    with pytest.raises(Exception, match="step_init must be one of"):
        TrainConfig(bits=4, step_init="minmax").validate()


def test_mse_calibrated_network_runs_on_int8_kernels_like_fake_quant(fp32_intermediates):
    from qsci.deploy.int8 import convert_to_int8

    torch.manual_seed(0)
    model = create_model("qsci-t-4bit", in_ch=4, units=1, per_channel_act=False).eval()
    set_step_init(model, "mse")
    x = torch.rand(1, 1, 8, 16, 16)
    with torch.inference_mode():
        ref = model(x)  # calibrates every quantizer on x
        zps = [float(m.act.zero_point) for m in model.modules() if isinstance(m, QConv3d)]
        out = convert_to_int8(model)(x)
    assert sum(z != 0 for z in zps) > len(zps) // 2  # the shifted-code path is what runs
    mse = float(((out - ref) ** 2).mean())
    assert out.shape == ref.shape and 10 * torch.log10(ref.abs().max() ** 2 / mse) > 60
