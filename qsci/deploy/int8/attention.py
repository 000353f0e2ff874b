"""`Int8TSAB`: the quantized temporal self-attention on integer kernels (planar by default)."""

from __future__ import annotations

import torch
import torch.nn as nn

from qsci.deploy.int8.codes import (_MID, ActQuantizerParams, FusedFakeQuant, codes_fit, fake_quant_via_codes,
                                    quantize_codes)
from qsci.deploy.int8.layers import Int8Linear
from qsci.deploy.int8 import channel_passes, native


class Int8TSAB(nn.Module):
    """Temporal self-attention of a converted Q-SCI block, with fewer passes over memory.

    Same arithmetic as qsci.models.blocks.TSAB (quantized). Default (`planar`): integer codes
    laid out with pixels innermost (`forward_tokens`, 4x faster). Otherwise (per-channel steps,
    `exact=True`, reference kernel, `fuse=False`): token-major, the per-head q/k shifts and the
    q/k/v fake quantizers applied per column of the 2-D qkv output in place (one buffer instead
    of three strided copies), softmax over the 8 frames spelled out in place (torch's softmax
    over a last axis of 8 was 5x slower here).
    """

    def __init__(self, tsab: nn.Module, exact: bool = False):
        super().__init__()
        self.heads, self.inner, self.scale = tsab.heads, tsab.inner, tsab.scale
        self.qkv, self.proj = tsab.qkv, tsab.proj
        d = self.inner // self.heads
        acts = [ActQuantizerParams(getattr(tsab, n), self.heads) for n in ("q_act", "k_act", "v_act")]
        shift = torch.cat([tsab.moveq.bias.detach().reshape(-1), tsab.movek.bias.detach().reshape(-1),
                           torch.zeros(self.heads)])  # per (part, head)
        cols = lambda v: v.reshape(3 * self.heads, 1).expand(-1, d).reshape(-1)  # noqa: E731
        self.register_buffer("shift", cols(shift))
        self.register_buffer("a", cols(torch.cat([p.scale for p in acts])))
        self.register_buffer("zr", cols(torch.cat([p.zero_point for p in acts])))
        self.register_buffer("lo", cols(torch.cat([p.lo for p in acts])))
        self.register_buffer("hi", cols(torch.cat([p.hi for p in acts])))
        self.attn_act = FusedFakeQuant(tsab.attn_act)
        self.attn_act.ch_axis = -3  # heads: (N, heads, T, T) here, (B, HW, heads, T, T) in _forward_int
        # integer path: q/k shifts ride in the qkv kernel's bias, q/k/v quantize via uint8 codes
        self.via_codes = not exact and codes_fit(self.zr, self.lo, self.hi)
        self.register_buffer("lo8", (self.lo - self.zr + _MID).clamp(0, 255).to(torch.uint8).reshape(1, -1))
        self.register_buffer("hi8", (self.hi - self.zr + _MID).clamp(0, 255).to(torch.uint8).reshape(1, -1))
        self._shift_in_bias = False
        self._planar: dict | None = None
        self.fuse = True  # convert_to_int8(fuse=False) keeps the earlier token-major path

    @property
    def planar(self) -> bool:
        """True when the planar integer path runs (per-tensor linears on oneDNN, default rounding)."""
        return self.fuse and isinstance(self.qkv, Int8Linear) and isinstance(self.proj, Int8Linear) \
            and self.qkv.fusable \
            and self.proj.fusable and bool(((self.hi - self.lo) == (self.hi - self.lo)[0]).all()) \
            and float(self.hi[0] - self.lo[0]) <= 255 and not self._shift_in_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, g, T, H, W)
        if self.planar:
            b, g, t, h, w = x.shape
            return self.forward_tokens(x).reshape(b, t, h, w, g).permute(0, 4, 1, 2, 3)
        if isinstance(self.qkv, Int8Linear) and isinstance(self.proj, Int8Linear):
            return self._forward_int(x)
        b, g, t, h, w = x.shape
        n, d = b * h * w, self.inner // self.heads
        qkv = self.qkv(x.permute(0, 3, 4, 2, 1).reshape(n, t, g)).reshape(n * t, 3 * self.inner)
        self._quantize_qkv(qkv)
        qkv = qkv.reshape(n, t, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        out = self._attend(qkv[0], qkv[1], qkv[2])  # (N, heads, T, d)
        out = self.proj(out.transpose(1, 2).reshape(n, t, self.inner))  # (N, T, g)
        return out.reshape(b, h, w, t, g).permute(0, 4, 3, 1, 2)

    def _quantize_qkv(self, qkv: torch.Tensor) -> None:
        """q + shift, then lsq.fake_quant_act per head, in place: (round(clamp(v / a + zr)) - zr) * a."""
        qkv.add_(self.shift).div_(self.a).add_(self.zr).clamp_(self.lo, self.hi).round_()
        qkv.sub_(self.zr).mul_(self.a)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        attn = torch.matmul(q, k.transpose(-2, -1)).mul_(self.scale)  # (..., T, T)
        attn = attn.sub_(attn.amax(dim=-1, keepdim=True)).exp_()
        attn = self.attn_act(attn.div_(attn.sum(dim=-1, keepdim=True)))
        return torch.matmul(attn, v)  # (..., T, d)

    def _forward_int(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens in frame-major order (b, t, h, w): the channels_last_3d memory order, so the
        uint8 input codes are a view and the output comes back channels-last without a copy."""
        b, g, t, h, w = x.shape
        hw, d = h * w, self.inner // self.heads
        u = self.qkv.codes(x, axis=1).permute(0, 2, 3, 4, 1).reshape(b * t * hw, g)
        if self.via_codes:
            if not self._shift_in_bias:  # q/k shifts become the qkv kernel's bias (first term)
                extra = self.shift.new_zeros((self.qkv.terms - 1) * self.shift.numel())
                self.qkv.bias = torch.cat([self.shift, extra]) + (0 if self.qkv.bias is None else self.qkv.bias)
                self.qkv._packed, self._shift_in_bias = None, True
            qkv = self.qkv.forward_codes(u)  # (B*T*H*W, 3*inner) = linear + shift
            done = channel_passes.channel_fake_quant_(qkv, self.a, self.lo8, self.hi8)  # one C pass, same values
            qkv = done if done is not None else fake_quant_via_codes(qkv, 1, self.a.double(), self.lo8, self.hi8)
        else:
            qkv = self.qkv.forward_codes(u)  # (B*T*H*W, 3*inner), fresh buffer
            self._quantize_qkv(qkv)
        qkv = qkv.reshape(b, t, hw, 3, self.heads, d).permute(3, 0, 2, 4, 1, 5)  # (3, B, HW, heads, T, d)
        out = self._attend(qkv[0], qkv[1], qkv[2])  # (B, HW, heads, T, d), contiguous
        if self.proj.per_channel:  # channels are (head, d): token order first, then codes
            u = self.proj.codes(out.permute(0, 3, 1, 2, 4).reshape(b * t * hw, self.inner))
        else:  # codes first: the token-order copy moves uint8, not fp32
            u = self.proj.codes(out).permute(0, 3, 1, 2, 4).reshape(b * t * hw, self.inner)
        out = self.proj.forward_codes(u)  # (B*T*H*W, g)
        return out.reshape(b, t, h, w, g).permute(0, 4, 1, 2, 3)  # channels_last_3d view


    def _planar_params(self) -> dict:
        """Constants of the planar path, made once: the q/k/v steps folded into the qkv kernel's
        weight scales and bias (it writes the uint8 codes `clamp(round((y + shift)/a + zr)) - qmin`
        itself), the per-head softmax and output factors."""
        qkv, proj, d = self.qkv, self.proj, self.inner // self.heads
        a, zr, lo = self.a.double(), self.zr.double(), self.lo.double()
        base = self.shift.double() + (0 if qkv.bias is None else qkv.bias.double())
        heads = slice(0, self.inner, d)
        aq, ak, av = a[heads], a[self.inner:][heads], a[2 * self.inner:][heads]
        pa, pz = self.attn_act.scale.double(), self.attn_act.zero_point.double()
        return {
            # -lo is even (0 or -2^(b-1)), so round(v + zr - lo) = round(v + zr) - lo, ties included
            "packed": torch.ops.onednn.qlinear_prepack(qkv.weight_int, None),
            "w_scale": (qkv.weight_scale.double() / a).float(), "bias": (base / a + zr - lo).float(),
            "w_zp": torch.zeros_like(qkv.w_zp), "span": int(self.hi[0] - self.lo[0]),
            "center": (zr - lo).float().reshape(-1, 1),  # code byte - center = integer code - zr
            "logit": (self.scale * aq * ak).float().reshape(-1, 1, 1, 1),
            "pa": pa.float().reshape(-1, 1, 1, 1), "pz": pz.float().reshape(-1, 1, 1, 1),
            "out": (pa * av / proj.x_scale).float().reshape(-1, 1, 1, 1),
            # largest |code - zr| of q, k, v and of the attention codes: int16 arithmetic when exact
            "qkv_max": [float(torch.maximum((self.hi - self.zr)[part], (self.zr - self.lo)[part]).abs().max())
                        for part in (slice(0, self.inner), slice(self.inner, 2 * self.inner),
                                     slice(2 * self.inner, None))],
            "attn_max": float(torch.maximum((self.attn_act.qmax - pz).abs(), (self.attn_act.qmin - pz).abs()).max()),
            "native": self._native_params(pa, pz, c_out=(pa * av / proj.x_scale).float(),
                                          logit=(self.scale * aq * ak).float(), center=(zr - lo).float()),
        }

    def _attn_zps(self, pz: torch.Tensor) -> list[int]:
        """Per-head zero points of the attention codes in the uint8 (code - qmin) range."""
        return [int(z) - self.attn_act.qmin for z in pz.reshape(-1).tolist()]

    def _native_params(self, pa, pz, c_out, logit, center) -> dict | None:
        """Arguments of the fused C kernel (`native.attend_planar`), or None where it does not
        apply: no compiled kernel, or attention zero points outside the one-pass quantizer's range
        (then `_attend_planar` takes its float branch, which the kernel does not implement)."""
        aq = self.attn_act
        zps = self._attn_zps(pz)
        if native.library() is None or not all(0 <= z <= 255 for z in zps) \
                or not 0 <= self.proj.x_zp <= 255:
            return None
        pa32 = pa.float().reshape(-1)
        return {"center": center.reshape(-1), "logit": logit.reshape(-1), "factor": c_out.reshape(-1),
                "inv_pa": torch.ones_like(pa32) / pa32,  # float32 1/scale, as quantize_per_tensor
                "zp": torch.tensor(zps, dtype=torch.float32), "amax": float(aq.qmax - aq.qmin),
                "out_zp": float(self.proj.x_zp), "code_max": float(self.proj.code_max)}

    def forward_tokens(self, x: torch.Tensor, add: torch.Tensor | None = None,
                       codes: torch.Tensor | None = None) -> torch.Tensor:
        """(B, g, T, H, W) -> (B*T*H*W, g) fp32 rows in frame-major token order (+ `add`, same shape).
        `codes`: the qkv layer's input codes of x, where the caller made them already.

        Planar attention: the qkv kernel writes uint8 codes, which are turned into integer-valued
        floats laid out (part, head, d, T, pixels), so every attention step is an elementwise op
        over 16384 contiguous pixels (torch's bmm over 65536 8x4 matrices was 4x slower).
        q.k is an exact integer; softmax, the attention quantizer and attn @ v follow the float
        model's formulas; the proj kernel adds the residual (`add`) as a oneDNN post-op.
        """
        if self._planar is None:
            self._planar = self._planar_params()
        c = self._planar
        b, g, t, h, w = x.shape
        hw, heads, d = h * w, self.heads, self.inner // self.heads
        u = (self.qkv.codes(x, axis=1) if codes is None else codes).permute(0, 2, 3, 4, 1).reshape(b * t * hw, g)
        codes = torch.ops.onednn.qlinear_pointwise(
            u, self.qkv.x_scale, self.qkv.x_zp, c["packed"], c["w_scale"], c["w_zp"], c["bias"],
            1.0, 0, None, "none", [], "")  # (B*T*H*W, 3*inner) uint8, saturated below at 0
        if c["native"] is not None and native.active():  # the kernel clamps at `span` as it reads
            uo = native.attend_planar(codes, b, t, heads, d, c["span"], c["native"])
            return self._project(uo, add)
        if c["span"] < 255:
            codes.clamp_(max=c["span"])
        cols = 3 * self.inner
        mq, mk, mv = c["qkv_max"]
        # q.k and attn @ v are sums of integer products: int16 halves the bytes where no sum can overflow
        small = max(d * mq * mk, t * c["attn_max"] * mv) < 2**15
        dtype = torch.int16 if small else torch.float32
        center = c["center"].to(dtype)
        blocks = []
        for i in range(b):
            part = codes[i * t * hw:(i + 1) * t * hw]
            planar = torch.empty(cols, t * hw, dtype=dtype)
            if cols % 4 == 0:  # transpose 4-byte words (2.5x faster than bytes), then split them
                words = part.view(torch.int32).t().contiguous().view(torch.uint8).reshape(cols // 4, t * hw, 4)
                torch.sub(words.permute(0, 2, 1), center.reshape(cols // 4, 4, 1),
                          out=planar.reshape(cols // 4, 4, t * hw))
            else:
                torch.sub(part.t().contiguous(), center, out=planar)
            qkv = planar.reshape(3, heads, d, t, hw)
            blocks.append(self._attend_planar(qkv[0], qkv[1], qkv[2], c))
        uo = blocks[0] if b == 1 else torch.cat(blocks)
        return self._project(uo, add)

    def _project(self, uo: torch.Tensor, add: torch.Tensor | None) -> torch.Tensor:
        """The proj kernel on the attention's codes, with the residual `add` as a post-op."""
        if add is None:
            return self.proj.forward_codes(uo)
        return torch.ops.onednn.qlinear_pointwise.binary(
            uo, self.proj.x_scale, self.proj.x_zp, self.proj.packed(), self.proj.weight_scale, self.proj.w_zp,
            add, self.proj.bias, 1.0, 0, torch.float32, 1.0, 0, "add", 1.0, "none", [], "")

    def _attend_planar(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, c: dict) -> torch.Tensor:
        """q, k, v (heads, d, T, P) integer codes - zr -> proj input codes (T*P, inner) uint8."""
        heads, d, t, p = q.shape
        logits = q[:, 0, :, None, :] * k[:, 0, None, :, :]  # (heads, T, S, P)
        for i in range(1, d):
            logits.addcmul_(q[:, i, :, None, :], k[:, i, None, :, :])
        attn = torch.softmax(torch.mul(logits, c["logit"]), dim=2)
        # attention quantizer (lsq.fake_quant_act), keeping code - zr
        aq = self.attn_act
        zps = self._attn_zps(c["pz"])
        if all(0 <= z <= 255 for z in zps):
            # per head: torch's one-pass quantize (round(p * (1/a)) + zp), clamp, minus zp: 2 ms
            # instead of 4 for the float chain, and the same codes (0 of 33.5M differed on the
            # trained T 4-bit models, docs/int8.md)
            codes = torch.empty(attn.shape, dtype=v.dtype)
            for h, zp in enumerate(zps):
                u = quantize_codes(attn[h], float(c["pa"].reshape(-1)[h]), zp, aq.qmax - aq.qmin)
                torch.sub(u, zp, out=codes[h])
            attn = codes
        else:
            attn.div_(c["pa"]).add_(c["pz"]).clamp_(aq.qmin, aq.qmax).round_().sub_(c["pz"])
            attn = attn.to(v.dtype)
        frames = torch.empty(t, heads, d, p, dtype=v.dtype)  # written as (heads, T, d, P) ...
        out = frames.permute(1, 0, 2, 3)
        torch.mul(attn[:, :, 0, None, :], v[:, None, :, 0, :], out=out)
        for s in range(1, t):
            out.addcmul_(attn[:, :, s, None, :], v[:, None, :, s, :])
        factor = c["out"].reshape(1, heads, 1, 1)
        scaled = frames.mul_(factor) if frames.is_floating_point() else torch.mul(frames, factor)
        uo = quantize_codes(scaled, 1.0, self.proj.x_zp, self.proj.code_max)
        # ... so that token order is one (inner, P) -> (P, inner) transpose per frame
        return uo.reshape(t, heads * d, p).transpose(1, 2).reshape(t * p, heads * d)
