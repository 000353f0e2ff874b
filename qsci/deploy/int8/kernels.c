/* Fused passes of the int8 graph that eager torch spells as several passes over memory.
   Built by qsci/deploy/int8/native.py with the system C compiler and called through ctypes
   (no torch headers: it compiles in about a second).

   qsci_attend_planar: the planar temporal attention of Int8TSAB (qsci/deploy/int8/attention.py)
   as one pass.

   Why: in eager torch this step is about ten passes over memory per block (a byte transpose,
   the centring, q.k, softmax, the attention quantizer, attn @ v, scaling, the proj codes, a
   transpose back); here each pixel's 8 frames are read once from the qkv kernel's uint8 codes
   and its proj-input codes are written once. Pixels are taken LANES at a time so that every
   inner loop runs over the lanes and the compiler vectorizes it.

   Same arithmetic as Int8TSAB._attend_planar: integer q.k (exact in float), softmax of the
   scaled logits, the attention quantizer `clamp(rint(p * inv_pa) + zp, 0, amax) - zp`, integer
   attn @ v, times the per-head output factor, then `clamp(rint(x) + out_zp, 0, code_max)`.
   Float rounding may differ from torch in the last bit (exp, the softmax division), which can
   flip a rare attention code; tests/test_native_kernels.py bounds that.

   qsci_leaky_codes: LeakyReLU and the next layer's input quantizer in one pass, fp32 in, uint8
   codes out (eager: an in-place LeakyReLU pass, quantize_per_tensor, a clamp on the codes).
   Same arithmetic as torch (fbgemm's quantize): `clamp(rint(fma(leaky(x), inv_scale, zp)), 0, code_max)`.

   qsci_row_codes: the same quantizer on (rows, c) floats whose rows are `row_stride` apart (a
   channel slice of a channels-last tensor, e.g. one group of a ResDNet), written into rows
   `out_stride` apart (a column slice of the codes of a channel concatenation): torch would copy
   the slice to a dense fp32 tensor first and concatenate the codes afterwards.

   qsci_sum_codes: `s = leaky(a) + b` turned into the codes of the two layers that read s (the
   encoder's and decoder's branch sums), one pass instead of LeakyReLU, add and two quantizes.

   qsci_add_codes: `s += y` and the codes of s for the layer that reads it (a CFormer's FFN). */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#define LANES 16
#define MAX_T 32
#define MAX_COLS 768

/* A quantizer's uint8 code of v, as a float: clamp(rint(v * inv_scale + zp), 0, code_max), the
   multiply-add fused as in fbgemm's quantize. */
static inline float to_code(float v, float inv_scale, float zp, float code_max) {
    const float c = rintf(v * inv_scale + zp);
    return c < 0.f ? 0.f : (c > code_max ? code_max : c);
}

/* e^x for x <= 0 (softmax after the max is subtracted), written so that loops over lanes
   vectorize (glibc's expf is a scalar call): x = n ln2 + r, |r| <= ln2 / 2, e^r by a degree-6
   polynomial (Cephes' expf coefficients), 2^n from the exponent bits. About 1 ulp. */
static inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;
    const float n = rintf(x * 1.44269504088896341f);
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale = {.i = ((int32_t)n + 127) << 23};
    return p * scale.f;
}

/* One head of one tile: q, k, v as [i][f][lane] (code - zero point), o as [i][f][lane] codes. */
static inline __attribute__((always_inline)) void attend_head(
        const float *q, const float *k, const float *v, float *lg, uint8_t *o, int64_t t, int64_t d,
        float logit, float ia, float z, float amax, float factor, float out_zp, float code_max) {
    /* logits[f][s] = logit * sum_i q[i][f] k[i][s]; softmax over s; quantize */
    for (int64_t f = 0; f < t; ++f) {
        float *row = lg + f * t * LANES;
        for (int64_t s = 0; s < t; ++s) {
            float acc[LANES] = {0};
            for (int64_t i = 0; i < d; ++i) {
                const float *qi = q + (i * t + f) * LANES, *ki = k + (i * t + s) * LANES;
                for (int j = 0; j < LANES; ++j) acc[j] += qi[j] * ki[j];
            }
            for (int j = 0; j < LANES; ++j) row[s * LANES + j] = acc[j] * logit;
        }
        float mx[LANES], sum[LANES] = {0};
        for (int j = 0; j < LANES; ++j) mx[j] = row[j];
        for (int64_t s = 1; s < t; ++s)
            for (int j = 0; j < LANES; ++j) mx[j] = row[s * LANES + j] > mx[j] ? row[s * LANES + j] : mx[j];
        for (int64_t s = 0; s < t; ++s) {
            float *e = row + s * LANES;
            for (int j = 0; j < LANES; ++j) e[j] = exp_nonpositive(e[j] - mx[j]);
            for (int j = 0; j < LANES; ++j) sum[j] += e[j];
        }
        for (int64_t s = 0; s < t; ++s) {
            float *e = row + s * LANES;
            for (int j = 0; j < LANES; ++j) e[j] = to_code(e[j] / sum[j], ia, z, amax) - z;
        }
    }
    /* out[f][i] = code(factor * sum_s attn[f][s] v[i][s]) */
    for (int64_t i = 0; i < d; ++i) {
        const float *vi = v + i * t * LANES;
        for (int64_t f = 0; f < t; ++f) {
            const float *row = lg + f * t * LANES;
            float acc[LANES] = {0};
            for (int64_t s = 0; s < t; ++s)
                for (int j = 0; j < LANES; ++j) acc[j] += row[s * LANES + j] * vi[s * LANES + j];
            uint8_t *oi = o + (i * t + f) * LANES;
            for (int j = 0; j < LANES; ++j) oi[j] = (uint8_t)to_code(acc[j], factor, out_zp, code_max);
        }
    }
}

/* Gather one frame of a full tile: buf[c][f][lane] = min(code, smax) - center[c] for the LANES
   pixels' code rows (cols bytes each, consecutive). With AVX-512, one 32-bit gather per lane
   brings 4 columns at once (16 gathers instead of 768 byte loads for 48 columns). Returns 0
   where it does not apply (the caller's scalar loop runs). */
static inline int gather_frame(const uint8_t *block, float *buf, int64_t cols, int64_t t, int64_t f,
                               uint8_t smax, const float *center) {
#if defined(__AVX512F__)
    if (cols % 4 != 0 || cols * LANES > INT32_MAX) return 0;
    const __m512i rows = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32((int)cols));
    const __m512i byte = _mm512_set1_epi32(255), lim = _mm512_set1_epi32(smax);
    for (int64_t c = 0; c < cols; c += 4) {
        const __m512i w = _mm512_i32gather_epi32(rows, (const void *)(block + c), 1);
        const __m512i part[4] = {_mm512_and_si512(w, byte), _mm512_and_si512(_mm512_srli_epi32(w, 8), byte),
                                 _mm512_and_si512(_mm512_srli_epi32(w, 16), byte), _mm512_srli_epi32(w, 24)};
        for (int b = 0; b < 4; ++b) {
            const __m512 v = _mm512_cvtepi32_ps(_mm512_min_epu32(part[b], lim));
            _mm512_store_ps(buf + ((c + b) * t + f) * LANES, _mm512_sub_ps(v, _mm512_set1_ps(center[c + b])));
        }
    }
    return 1;
#else
    (void)block; (void)buf; (void)cols; (void)t; (void)f; (void)smax; (void)center;
    return 0;
#endif
}

/* out[j][c] = in[c * stride + j] for a 16 x 16 byte block (16 rows `stride` bytes apart -> 256
   contiguous bytes): the attention's codes back to token rows, with SSE2 unpacks. */
static inline void transpose16(const uint8_t *in, int64_t stride, uint8_t *out) {
#if defined(__SSE2__)
    __m128i a[16], b[16];
    for (int r = 0; r < 16; ++r) a[r] = _mm_loadu_si128((const __m128i *)(in + r * stride));
    for (int i = 0; i < 8; ++i) {  /* bytes of rows 2i, 2i+1 interleaved: columns 0-7, 8-15 */
        b[2 * i] = _mm_unpacklo_epi8(a[2 * i], a[2 * i + 1]);
        b[2 * i + 1] = _mm_unpackhi_epi8(a[2 * i], a[2 * i + 1]);
    }
    for (int k = 0; k < 4; ++k)  /* rows 4k..4k+3: columns 0-3, 4-7, 8-11, 12-15 */
        for (int m = 0; m < 2; ++m) {
            a[4 * k + 2 * m] = _mm_unpacklo_epi16(b[4 * k + m], b[4 * k + 2 + m]);
            a[4 * k + 2 * m + 1] = _mm_unpackhi_epi16(b[4 * k + m], b[4 * k + 2 + m]);
        }
    for (int k = 0; k < 2; ++k)  /* rows 8k..8k+7: column pairs */
        for (int m = 0; m < 4; ++m) {
            b[8 * k + 2 * m] = _mm_unpacklo_epi32(a[8 * k + m], a[8 * k + 4 + m]);
            b[8 * k + 2 * m + 1] = _mm_unpackhi_epi32(a[8 * k + m], a[8 * k + 4 + m]);
        }
    for (int j = 0; j < 8; ++j) {  /* all 16 rows of columns 2j, 2j+1 */
        _mm_storeu_si128((__m128i *)(out + 32 * j), _mm_unpacklo_epi64(b[j], b[8 + j]));
        _mm_storeu_si128((__m128i *)(out + 32 * j + 16), _mm_unpackhi_epi64(b[j], b[8 + j]));
    }
#else
    for (int j = 0; j < 16; ++j)
        for (int c = 0; c < 16; ++c) out[16 * j + c] = in[c * stride + j];
#endif
}

/* codes: (batch * t * hw, 3 * inner) uint8, token-major (frame-major within a batch item).
   out:   (batch * t * hw, inner) uint8, the same token order.
   Pixels [p_begin, p_end) of every batch item are processed (a caller's thread takes a slice). */
int qsci_attend_planar(const uint8_t *codes, uint8_t *out, int64_t batch, int64_t t, int64_t hw,
                       int64_t heads, int64_t d, int64_t span, const float *center, const float *logit,
                       const float *inv_pa, const float *zp, float amax, const float *factor,
                       float out_zp, float code_max, int64_t p_begin, int64_t p_end) {
    const int64_t inner = heads * d, cols = 3 * inner;
    if (t < 1 || t > MAX_T || cols > MAX_COLS || d < 1) return 1;
    float *buf = (float *)aligned_alloc(64, sizeof(float) * (size_t)(cols * t * LANES));
    float *lg = (float *)aligned_alloc(64, sizeof(float) * (size_t)(t * t * LANES));
    uint8_t *ob = (uint8_t *)malloc((size_t)(inner * t * LANES));
    if (!buf || !lg || !ob) { free(buf); free(lg); free(ob); return 2; }
    const uint8_t smax = (uint8_t)(span < 255 ? span : 255);

    for (int64_t bi = 0; bi < batch; ++bi) {
        for (int64_t p0 = p_begin; p0 < p_end; p0 += LANES) {
            const int64_t n = (p_end - p0) < LANES ? (p_end - p0) : LANES;
            /* gather: buf[c][f][lane] = min(code, span) - center[c] (missing lanes: 0). For one
               frame the LANES pixels' code rows are one contiguous block, so the lane loop is a
               strided load and a contiguous vector store. */
            if (n < LANES) memset(buf, 0, sizeof(float) * (size_t)(cols * t * LANES));
            for (int64_t f = 0; f < t; ++f) {
                const uint8_t *block = codes + ((bi * t + f) * hw + p0) * cols;
                if (n == LANES && gather_frame(block, buf, cols, t, f, smax, center)) continue;
                for (int64_t c = 0; c < cols; ++c) {
                    float *dst = buf + (c * t + f) * LANES;
                    const float cen = center[c];
                    if (n == LANES) {
                        for (int j = 0; j < LANES; ++j) {
                            const uint8_t u = block[j * cols + c];
                            dst[j] = (float)(u < smax ? u : smax) - cen;
                        }
                    } else {
                        for (int64_t j = 0; j < n; ++j) {
                            const uint8_t u = block[j * cols + c];
                            dst[j] = (float)(u < smax ? u : smax) - cen;
                        }
                    }
                }
            }
            for (int64_t h = 0; h < heads; ++h) {
                const float *q = buf + (h * d) * t * LANES;
                const float *k = buf + (inner + h * d) * t * LANES;
                const float *v = buf + (2 * inner + h * d) * t * LANES;
                uint8_t *o = ob + (h * d) * t * LANES;
                /* the usual shapes get their own copy with constant trip counts (unrolled, in registers) */
                if (t == 8 && d == 4)
                    attend_head(q, k, v, lg, o, 8, 4, logit[h], inv_pa[h], zp[h], amax, factor[h], out_zp, code_max);
                else if (t == 8 && d == 8)
                    attend_head(q, k, v, lg, o, 8, 8, logit[h], inv_pa[h], zp[h], amax, factor[h], out_zp, code_max);
                else
                    attend_head(q, k, v, lg, o, t, d, logit[h], inv_pa[h], zp[h], amax, factor[h], out_zp, code_max);
            }
            /* scatter: out row (bi, f, pixel), column (h, i) */
            for (int64_t f = 0; f < t; ++f)
                if (n == LANES && inner == 16)
                    transpose16(ob + f * LANES, t * LANES, out + ((bi * t + f) * hw + p0) * inner);
                else for (int64_t j = 0; j < n; ++j) {
                    uint8_t *dst = out + ((bi * t + f) * hw + p0 + j) * inner;
                    for (int64_t c = 0; c < inner; ++c) dst[c] = ob[(c * t + f) * LANES + j];
                }
        }
    }
    free(buf);
    free(lg);
    free(ob);
    return 0;
}

/* x: n floats (any dense layout; out has the same one). Elements [begin, end). */
void qsci_leaky_codes(const float *x, uint8_t *out, int64_t begin, int64_t end, float slope,
                      int leaky, float inv_scale, float zp, float code_max) {
    const float neg = leaky ? slope : 1.0f;
    for (int64_t i = begin; i < end; ++i) {
        out[i] = (uint8_t)to_code(x[i] > 0.f ? x[i] : x[i] * neg, inv_scale, zp, code_max);
    }
}

/* a, b: the same dense layout; u1, u2 too. Elements [begin, end). b may be NULL: the two
   layers' codes of leaky(a) alone (two layers reading one tensor, e.g. a CFormer's input). */
void qsci_sum_codes(const float *a, const float *b, uint8_t *u1, uint8_t *u2, int64_t begin, int64_t end,
                    float slope_a, float inv1, float zp1, float max1, float inv2, float zp2, float max2) {
    for (int64_t i = begin; i < end; ++i) {  /* -O3 unswitches the b test out of the loop */
        const float s = (a[i] > 0.f ? a[i] : a[i] * slope_a) + (b ? b[i] : 0.f);
        u1[i] = (uint8_t)to_code(s, inv1, zp1, max1);
        u2[i] = (uint8_t)to_code(s, inv2, zp2, max2);
    }
}

/* Rows [begin, end) of x (row i at x + i * row_stride, c floats) -> out rows (row i at
   out + i * out_stride, c bytes): a slice of a wider code buffer, so concatenations cost nothing. */
void qsci_row_codes(const float *x, uint8_t *out, int64_t begin, int64_t end, int64_t c, int64_t row_stride,
                    int64_t out_stride, float inv_scale, float zp, float code_max) {
    for (int64_t i = begin; i < end; ++i) {
        const float *src = x + i * row_stride;
        uint8_t *dst = out + i * out_stride;
        for (int64_t k = 0; k < c; ++k) dst[k] = (uint8_t)to_code(src[k], inv_scale, zp, code_max);
    }
}

/* s += y in place, and the codes of the new s (a residual sum read next by one quantized layer). */
void qsci_add_codes(float *s, const float *y, uint8_t *u, int64_t begin, int64_t end, float inv_scale,
                    float zp, float code_max) {
    for (int64_t i = begin; i < end; ++i) {
        const float v = s[i] + y[i];
        s[i] = v;
        u[i] = (uint8_t)to_code(v, inv_scale, zp, code_max);
    }
}

/* The same three passes on bf16 conv outputs (oneDNN writes half the bytes; these read half).
   A bf16 value is the top half of the float with the same bits, so widening is exact. */
static inline float from_bf16(uint16_t h) {
    union { uint32_t i; float f; } v = {.i = (uint32_t)h << 16};
    return v.f;
}

void qsci_leaky_codes_bf16(const uint16_t *x, uint8_t *out, int64_t begin, int64_t end, float slope,
                           int leaky, float inv_scale, float zp, float code_max) {
    const float neg = leaky ? slope : 1.0f;
    for (int64_t i = begin; i < end; ++i) {
        const float v = from_bf16(x[i]);
        out[i] = (uint8_t)to_code(v > 0.f ? v : v * neg, inv_scale, zp, code_max);
    }
}

void qsci_sum_codes_bf16(const uint16_t *a, const uint16_t *b, uint8_t *u1, uint8_t *u2, int64_t begin,
                         int64_t end, float slope_a, float inv1, float zp1, float max1, float inv2, float zp2,
                         float max2) {
    for (int64_t i = begin; i < end; ++i) {
        const float va = from_bf16(a[i]);
        const float s = (va > 0.f ? va : va * slope_a) + (b ? from_bf16(b[i]) : 0.f);
        u1[i] = (uint8_t)to_code(s, inv1, zp1, max1);
        u2[i] = (uint8_t)to_code(s, inv2, zp2, max2);
    }
}

/* s (float) += y (bf16) in place, and the codes of the new s. */
void qsci_add_codes_bf16(float *s, const uint16_t *y, uint8_t *u, int64_t begin, int64_t end, float inv_scale,
                         float zp, float code_max) {
    for (int64_t i = begin; i < end; ++i) {
        const float v = s[i] + from_bf16(y[i]);
        s[i] = v;
        u[i] = (uint8_t)to_code(v, inv_scale, zp, code_max);
    }
}
