/* GAP-TV in fused passes (qsci/solvers/gaptv_native.py builds and calls this).

   The numpy version makes about twenty passes over the (T, H, W) stack per TV iteration. Here a
   TV iteration is done row by row, in place: at row i, for each frame t, first the duals of
   (t, i) are updated from the old u (which still holds rows >= i and frames >= t of row i), then
   u(t, i) is overwritten from the new duals (which hold rows <= i and frames <= t). The
   projection and all TV iterations of one GAP iteration run as a wavefront over the rows, so a
   row is reused from cache by every stage. The arithmetic is the numpy version's, term by term
   (built without FMA contraction), so both give the same floats. Arrays are (T, H, W) float32,
   C order. */

#include <stdint.h>
#include <stddef.h>

static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* y_acc += y - av; r = (y_acc - av) / phi_s; f = v + phi * r (v: the previous TV output, in u).
   Rows [r0, r1); r is an (H, W) scratch array. The first TV pass that follows starts from u = f
   and zero duals (its `fresh` flag), so neither is written here. */
static void project_rows(const float *y, float *y_acc, const float *av, const float *phi_s,
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

/* Row i of one TV iteration (all frames), u in place; `old` holds the iteration's input u for
   rows >= i (f after a projection, else u itself) and `below` its row i + 1 (NULL at the
   bottom); qy holds this iteration's new duals for row i - 1. */
static void tv_row(const float *f, float *u, const float *old, const float *below_rows,
                   float *qx, float *qy, float *qt, int64_t T, int64_t H, int64_t W, float bound,
                   float bound_t, float wt2, float step, int64_t i, int fresh, const float *phi, float *av) {
    const int64_t plane = H * W;
    for (int64_t t = 0; t < T; t++) {
        const int64_t row = t * plane + i * W;
        float *ur = u + row, *qxr = qx + row, *qyr = qy + row;
        const float *uo = old + row;
        const float *below = below_rows ? below_rows + t * plane : NULL;
        const float *above = i > 0 ? qyr - W : NULL;
        float *qtr = qt ? qt + row : NULL;
        const float *qtp = (qt && t > 0) ? qtr - plane : NULL;
        const float *later = (qt && t + 1 < T) ? uo + plane : NULL;
        if (fresh) {
            #pragma GCC ivdep
            for (int64_t j = 0; j + 1 < W; j++) qxr[j] = clampf(uo[j + 1] - uo[j], -bound, bound);
            qxr[W - 1] = 0.0f;
            #pragma GCC ivdep
            for (int64_t j = 0; j < W; j++) qyr[j] = below ? clampf(below[j] - uo[j], -bound, bound) : 0.0f;
            if (qtr)
                #pragma GCC ivdep
                for (int64_t j = 0; j < W; j++) qtr[j] = later ? clampf(later[j] - uo[j], -bound_t, bound_t) : 0.0f;
        } else {
            #pragma GCC ivdep
            for (int64_t j = 0; j + 1 < W; j++) qxr[j] = clampf(qxr[j] + (uo[j + 1] - uo[j]), -bound, bound);
            if (below)
                #pragma GCC ivdep
                for (int64_t j = 0; j < W; j++) qyr[j] = clampf(qyr[j] + (below[j] - uo[j]), -bound, bound);
            if (later)
                #pragma GCC ivdep
                for (int64_t j = 0; j < W; j++) qtr[j] = clampf(qtr[j] + (later[j] - uo[j]), -bound_t, bound_t);
        }
        const float *fr = f + row;
        #pragma GCC ivdep
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
            if (t == 0) {
                _Pragma("GCC ivdep") for (int64_t j = 0; j < W; j++) a[j] = ur[j] * ph[j];
            } else {
                _Pragma("GCC ivdep") for (int64_t j = 0; j < W; j++) a[j] += ur[j] * ph[j];
            }
        }
    }
}

/* One whole GAP-TV iteration (projection, then `iters` TV iterations, then av = sum_t u * phi)
   as a wavefront over rows: at step s the projection does row s + 1, TV iteration k row s - k.
   Each row's data is then used by every stage while it is still in cache; iteration k at row i
   reads iteration k - 1's rows i and i + 1 (done) and its own row i - 1 duals (done). */
void qsci_gap_iteration(const float *y, float *y_acc, float *av, const float *phi_s, const float *phi,
                        float *u, float *f, float *qx, float *qy, float *qt, float *r,
                        int64_t T, int64_t H, int64_t W, float bound, float bound_t, float wt2,
                        float step, int64_t iters) {
    for (int64_t s = -1; s < H + iters - 1; s++) {
        if (s + 1 < H) project_rows(y, y_acc, av, phi_s, phi, u, f, r, T, H, W, s + 1, s + 2);
        for (int64_t k = 0; k < iters; k++) {
            const int64_t i = s - k;
            if (i < 0 || i >= H) continue;
            const float *old = k == 0 ? f : u;
            const float *below = i + 1 < H ? old + (i + 1) * W : NULL;
            tv_row(f, u, old, below, qx, qy, qt, T, H, W, bound, bound_t, wt2, step, i, k == 0,
                   phi, k == iters - 1 ? av : NULL);
        }
    }
}
