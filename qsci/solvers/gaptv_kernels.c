/* GAP-TV in fused passes (qsci/solvers/gaptv_native.py builds and calls this).

   The numpy version makes about twenty passes over the (T, H, W) stack per TV iteration. Here
   one TV iteration is one sweep, row by row, done in place: at row i, for each frame t, first
   the duals of (t, i) are updated from the old u (which still holds rows >= i and frames >= t
   of row i), then u(t, i) is overwritten from the new duals (which hold rows <= i and frames
   <= t). Threads sweep slices of rows; the two values a slice would read across its borders
   from another slice (the old u of the row after it, the new vertical dual of the row before
   it) are copied first by qsci_tv_halo. The arithmetic is the numpy version's, term by term,
   so both agree to float rounding. Arrays are (T, H, W) float32, C order. */

#include <stdint.h>
#include <stddef.h>

static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* y_acc += y - av; r = (y_acc - av) / phi_s; f = v + phi * r (v: the previous TV output, in u).
   Rows [r0, r1); r is an (H, W) scratch array. The TV sweep that follows starts from u = f and
   zero duals (its `fresh` flag), so neither is written here. */
void qsci_gap_project(const float *y, float *y_acc, const float *av, const float *phi_s,
                      const float *phi, const float *u, float *f, float *r,
                      int64_t T, int64_t H, int64_t W, int64_t r0, int64_t r1) {
    const int64_t plane = H * W;
    for (int64_t p = r0 * W; p < r1 * W; p++) {
        float acc = y_acc[p] + y[p];
        acc -= av[p];
        y_acc[p] = acc;
        r[p] = (acc - av[p]) / phi_s[p];
    }
    for (int64_t t = 0; t < T; t++) {
        for (int64_t p = r0 * W; p < r1 * W; p++) {
            int64_t k = t * plane + p;
            float x = phi[k] * r[p];
            x += u[k];
            f[k] = x;
        }
    }
}

/* For a slice starting at row b > 0: the old u of row b (read by the slice before it) and the
   new vertical dual of row b - 1 (read by the slice itself), each (T, W). `fresh`: the first
   iteration after a projection, u = f and duals 0. */
void qsci_tv_halo(const float *f, const float *u, const float *qy, float *u_row, float *qy_row,
                  int64_t T, int64_t H, int64_t W, float bound, int64_t b, int fresh) {
    const float *src = fresh ? f : u;
    for (int64_t t = 0; t < T; t++) {
        const float *ub = src + (t * H + b) * W, *ua = ub - W, *qa = qy + (t * H + b - 1) * W;
        for (int64_t j = 0; j < W; j++) {
            u_row[t * W + j] = ub[j];
            qy_row[t * W + j] = clampf((fresh ? 0.0f : qa[j]) + (ub[j] - ua[j]), -bound, bound);
        }
    }
}

/* One dual projected-gradient TV iteration over rows [r0, r1) of every frame, u in place:
   q <- clip(q + grad u), u <- f + step * div q (temporal dual weighted by wt2 = wt^2).
   u_next: the old u of row r1 (NULL when r1 == H); qy_prev: the new qy of row r0 - 1 (NULL when
   r0 == 0). av (NULL: skip) receives sum_t u * phi for the rows, for the next projection.
   `fresh`: the first iteration after a projection: the old u is f and the old duals are 0 (0 + x
   is x, so this is the same arithmetic without reading them). */
void qsci_tv_sweep(const float *f, float *u, float *qx, float *qy, float *qt,
                   int64_t T, int64_t H, int64_t W, float bound, float bound_t, float wt2,
                   float step, int64_t r0, int64_t r1, const float *u_next, const float *qy_prev,
                   const float *phi, float *av, int fresh) {
    const int64_t plane = H * W;
    const float *old = fresh ? f : u;
    for (int64_t i = r0; i < r1; i++) {
        for (int64_t t = 0; t < T; t++) {
            const int64_t row = t * plane + i * W;
            float *ur = u + row, *qxr = qx + row, *qyr = qy + row;
            const float *uo = old + row;
            const float *below = i + 1 < H ? (i + 1 == r1 ? u_next + t * W : uo + W) : NULL;
            const float *above = i > 0 ? (i == r0 ? qy_prev + t * W : qyr - W) : NULL;
            float *qtr = qt ? qt + row : NULL;
            const float *qtp = (qt && t > 0) ? qtr - plane : NULL;
            const float *later = (qt && t + 1 < T) ? uo + plane : NULL;
            /* duals of (t, i) from the old u */
            if (fresh) {
                for (int64_t j = 0; j + 1 < W; j++) qxr[j] = clampf(uo[j + 1] - uo[j], -bound, bound);
                qxr[W - 1] = 0.0f;
                for (int64_t j = 0; j < W; j++) qyr[j] = below ? clampf(below[j] - uo[j], -bound, bound) : 0.0f;
                if (qtr)
                    for (int64_t j = 0; j < W; j++) qtr[j] = later ? clampf(later[j] - uo[j], -bound_t, bound_t) : 0.0f;
            } else {
                for (int64_t j = 0; j + 1 < W; j++) qxr[j] = clampf(qxr[j] + (uo[j + 1] - uo[j]), -bound, bound);
                if (below)
                    for (int64_t j = 0; j < W; j++) qyr[j] = clampf(qyr[j] + (below[j] - uo[j]), -bound, bound);
                if (later)
                    for (int64_t j = 0; j < W; j++) qtr[j] = clampf(qtr[j] + (later[j] - uo[j]), -bound_t, bound_t);
            }
            /* u(t, i) from the new duals */
            const float *fr = f + row;
            for (int64_t j = 0; j < W; j++) {
                float d = qxr[j] + qyr[j];
                if (j > 0) d -= qxr[j - 1];
                if (above) d -= above[j];
                if (qtr) {
                    d += qtr[j] * wt2;
                    if (qtp) d -= qtp[j] * wt2;
                }
                ur[j] = d * step + fr[j];
            }
            if (av) {
                const float *ph = phi + row;
                float *a = av + i * W;
                if (t == 0) for (int64_t j = 0; j < W; j++) a[j] = ur[j] * ph[j];
                else for (int64_t j = 0; j < W; j++) a[j] += ur[j] * ph[j];
            }
        }
    }
}
