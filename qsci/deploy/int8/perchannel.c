/* Passes of the authors' per-channel layers on integer kernels (qsci/deploy/int8/layers.py).

   Their activation steps are folded into three int8 weight terms per layer (fold.py), so each
   layer is: per-channel input codes, one oneDNN call with 3x the output channels, and the sum of
   the three output slices. In eager torch the codes are `torch.quantize_per_channel` plus clamps
   and the sum is two adds over new tensors: together about half of an S 4-bit call. Here each
   is one pass over channel rows (channels-last memory).

   Built WITHOUT -ffast-math: the codes must round like torch (quantize_per_channel multiplies by a
   float 1/scale; the other route divides), and the term sums must add in torch's order. */

#include <math.h>
#include <stdint.h>

/* rows [begin, end) of c floats -> uint8 codes, clamped to 0..255 and then to [lo_c, hi_c], in float.
   multiply: rint(x * v_c + offset_c) with v = 1/step (route "shift": torch.quantize_per_channel's
   arithmetic, the zero point added before rounding, no fused multiply-add);
   else rint(x / v_c) + offset_c with v = step (route "bias": the torch ops x / step, round, + offset). */
void qsci_channel_codes(const float *restrict x, uint8_t *restrict out, int64_t begin, int64_t end, int64_t c,
                        const float *restrict v, const float *restrict offset, const float *restrict lo,
                        const float *restrict hi, int multiply) {
    for (int64_t i = begin; i < end; ++i) {
        const float *xr = x + i * c;
        uint8_t *o = out + i * c;
        for (int64_t k = 0; k < c; ++k) {
            float q = multiply ? rintf(xr[k] * v[k] + offset[k]) : rintf(xr[k] / v[k]) + offset[k];
            q = q < 0.f ? 0.f : (q > 255.f ? 255.f : q);
            q = q < lo[k] ? lo[k] : (q > hi[k] ? hi[k] : q);
            o[k] = (uint8_t)q;
        }
    }
}

/* rows [begin, end) of terms * o floats -> rows of o: ((t0 + t1) + t2) ..., torch's order. */
void qsci_sum_terms(const float *restrict y, float *restrict out, int64_t begin, int64_t end, int64_t o,
                    int64_t terms) {
    for (int64_t i = begin; i < end; ++i) {
        const float *yr = y + i * o * terms;
        float *r = out + i * o;
        for (int64_t k = 0; k < o; ++k) r[k] = yr[k] + yr[o + k];
        for (int64_t t = 2; t < terms; ++t)
            for (int64_t k = 0; k < o; ++k) r[k] += yr[t * o + k];
    }
}

/* The attention's per-channel q/k/v quantizers on the qkv output rows, in place of torch's
   quantize_per_channel (zero point 128), a clamp of the codes to [lo_c, hi_c] and dequantize:
   x <- ((clamp(rint(x * inv_c + 128), 0, 255) clamped to [lo_c, hi_c]) - 128) * scale_c, the
   last step in double as torch's dequantize computes it. */
void qsci_channel_fake_quant(float *restrict x, int64_t begin, int64_t end, int64_t c, const float *restrict inv,
                             const double *restrict scale, const float *restrict lo, const float *restrict hi) {
    for (int64_t i = begin; i < end; ++i) {
        float *xr = x + i * c;
        for (int64_t k = 0; k < c; ++k) {
            float q = rintf(xr[k] * inv[k] + 128.f);
            q = q < 0.f ? 0.f : (q > 255.f ? 255.f : q);
            q = q < lo[k] ? lo[k] : (q > hi[k] ? hi[k] : q);
            xr[k] = (float)(((double)q - 128.0) * scale[k]);
        }
    }
}
