"""LSQ / LSQ+ quantizers: forward formulas, straight-through gradients, LSQ gradient scale."""

from __future__ import annotations

import math

import pytest
import torch

from qsci.quant import ActQuantizer, QConv3d, QLinear, WeightQuantizer
from qsci.quant.lsq import fake_quant_act, fake_quant_weight, grad_scale, round_ste

QUANT_KEYS = ["weight", "bias", "alpha", "init_state", "act.alpha", "act.zero_point",
              "act.init_state", "act.signed"]


def test_round_ste_and_grad_scale():
    x = torch.tensor([0.4, 1.6, -2.5], requires_grad=True)
    y = round_ste(x)
    y.sum().backward()
    assert torch.equal(y.detach(), x.detach().round())
    assert torch.equal(x.grad, torch.ones(3))
    a = torch.tensor([2.0], requires_grad=True)
    b = grad_scale(a, 0.25)
    (3 * b).sum().backward()
    assert b.item() == 2.0 and a.grad.item() == pytest.approx(0.75)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_weight_formula(bits):
    torch.manual_seed(0)
    w = torch.randn(5, 3, 2, 2)
    alpha = torch.rand(5) * 0.3 + 0.05
    qn, qp = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    expected = torch.stack([torch.round(torch.clamp(w[o] / alpha[o], qn, qp)) * alpha[o] for o in range(5)])
    assert torch.allclose(fake_quant_weight(w, alpha, bits), expected)


def test_act_formula_signed_unsigned_and_zero_point():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4, 4)
    a, z = torch.tensor([0.1, 0.2, 0.05]), torch.tensor([1.4, -2.6, 0.0])
    for qmin, qmax in [(-8, 7), (0, 15)]:
        got = fake_quant_act(x, a, z, qmin, qmax, ch_axis=1)
        for c in range(3):
            zr = torch.round(z[c])
            ref = (torch.round(torch.clamp(x[:, c] / a[c] + zr, qmin, qmax)) - zr) * a[c]
            assert torch.allclose(got[:, c], ref, atol=1e-6)


def test_ste_gradient_passes_inside_and_blocks_outside():
    x = torch.tensor([0.05, 0.3, 5.0, -5.0], requires_grad=True)
    y = fake_quant_act(x, torch.tensor([0.1]), torch.tensor([0.0]), -8, 7, ch_axis=0)
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([1.0, 1.0, 0.0, 0.0]))


def test_lsq_step_gradient_matches_hand_formula_and_scale():
    """d out / d a = (round(v) - v) inside, (Qbound - zr) outside, times 1/sqrt(numel*Qp)."""
    torch.manual_seed(2)
    x = torch.randn(64) * 0.5
    bits, qmin, qmax = 4, -8, 7
    a = torch.tensor([0.07], requires_grad=True)
    z = torch.tensor([0.0], requires_grad=True)
    up = torch.randn(64)
    (fake_quant_act(x, a, z, qmin, qmax, 0) * up).sum().backward()
    v = x / 0.07
    inner = torch.where(v < qmin, torch.full_like(v, qmin),
                        torch.where(v > qmax, torch.full_like(v, qmax), v.round() - v))
    g = 1.0 / math.sqrt(x.numel() * qmax)
    assert a.grad.item() == pytest.approx(g * float((inner * up).sum()), rel=1e-4)
    # numerically: the scale is exactly the ratio to the unscaled straight-through gradient
    a2 = torch.tensor([0.07], requires_grad=True)
    ((round_ste((x / a2).clamp(qmin, qmax)) * a2) * up).sum().backward()
    assert a.grad.item() / a2.grad.item() == pytest.approx(g, rel=1e-5)
    # weight quantizer: same scale rule with numel of the weight
    w = torch.randn(3, 8, requires_grad=False)
    aw = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
    fake_quant_weight(w, aw, bits).sum().backward()
    vw = w / aw.detach()[:, None]
    innw = torch.where(vw < -8, torch.full_like(vw, -8.0), torch.where(vw > 7, torch.full_like(vw, 7.0), vw.round() - vw))
    gw = 1.0 / math.sqrt(w.numel() * 7)
    assert torch.allclose(aw.grad, gw * innw.sum(dim=1), rtol=1e-4)


def test_first_batch_initialisation():
    q = ActQuantizer(bits=4, channels=2, per_channel=True, ch_axis=1)
    x = torch.stack([torch.rand(3, 5), -torch.rand(3, 5)], dim=1)  # (3, 2, 5), channel 1 negative
    q(x)
    assert q.init_state.item() == 1 and q.signed.item() == 1
    expected = 2 * x.abs().mean(dim=(0, 2)) / math.sqrt(7)
    assert torch.allclose(q.alpha.detach(), expected)
    p = ActQuantizer(bits=4, channels=2, per_channel=False)
    p(torch.rand(3, 2, 5))
    assert p.signed.item() == 0 and p.alpha.shape == (1,)
    assert p.quant_params()[2:] == (0, 15)
    wq = WeightQuantizer(3, 4)
    w = torch.randn(4, 6)
    wq(w)
    assert torch.allclose(wq.alpha.detach(), 2 * w.abs().mean(dim=1) / math.sqrt(3))


@pytest.mark.parametrize("per_channel", [True, False])
def test_layers_state_dict_and_integer_views(per_channel):
    torch.manual_seed(3)
    conv = QConv3d(3, 4, (1, 3, 3), padding=(0, 1, 1), bits=4, per_channel_act=per_channel)
    x = torch.randn(1, 3, 2, 5, 5)
    y = conv(x)
    assert list(conv.state_dict()) == QUANT_KEYS
    assert conv.act.alpha.shape == ((3,) if per_channel else (1,))
    wi, scale = conv.int_weight()
    assert wi.dtype == torch.int8 and wi.abs().max() <= 8
    assert torch.allclose(wi.float() * scale.view(-1, 1, 1, 1, 1), conv.quant_weight().detach())
    step, zp, qmin, qmax = conv.act.quant_params()
    s = step.view(1, -1, 1, 1, 1)
    z = zp.view(1, -1, 1, 1, 1)
    xi = torch.clamp(torch.round(x / s + z), qmin, qmax)
    ref = torch.nn.functional.conv3d((xi - z) * s, wi.float() * scale.view(-1, 1, 1, 1, 1), conv.bias,
                                     padding=(0, 1, 1))
    assert torch.allclose(y, ref, atol=1e-5)
    lin = QLinear(6, 5, bias=False, bits=8, per_channel_act=per_channel)
    assert lin(torch.randn(2, 7, 6)).shape == (2, 7, 5)
    assert "bias" not in lin.state_dict() and lin.act.alpha.numel() == (6 if per_channel else 1)


def test_layer_gradients_flow_to_all_learnables():
    conv = QConv3d(2, 3, 3, padding=1, bits=3)
    conv(torch.randn(1, 2, 2, 4, 4)).square().mean().backward()
    for name in ["weight", "bias", "alpha", "act.alpha", "act.zero_point"]:
        g = conv.get_parameter(name).grad
        assert g is not None and torch.isfinite(g).all(), name
