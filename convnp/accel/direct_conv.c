/* convnp.accel: direct stride-1 convolution in C (optional; NumPy's im2col + GEMM is the reference).
 *
 * y[n, o, r, q] = bias[o] + sum_c sum_t w[o, c, t] * x[n, c, r*wp + q + off[t]]
 *
 * x holds each (n, c) image as a zero-padded plane of `plane` floats whose rows are `wp` long; off[t] is the
 * flat offset of kernel tap t = (i, j): i*dh*wp + j*dw. Output pixel (r, q) is computed at the flat position
 * p = r*wp + q, so every tap reads a contiguous run of the plane and no patch matrix is built. Positions with
 * q >= ow (the right border of each row) are computed too and thrown away; they may read past the plane
 * (into the next plane or the caller's slack), which changes nothing that is kept.
 *
 * `flags`: STORE_RELU stores max(y, 0) (a ReLU fused into the store); STORE_ADD adds the sum to what y holds
 * (the phases of a strided convolution, see phases.c), the ReLU then applying to the total.
 *
 * Register blocking (isa.h): OR filters x PB positions of accumulators, OR = 8 and PB = 48 with AVX-512
 * (24 registers; each tap costs 3 vector loads of x, 8 broadcast weights and 24 FMAs), 4 x 24 with AVX2
 * (12 of its 16 registers). Weights come packed as wpk[ob][c][t][8] (filters padded with zeros to a multiple
 * of OB = 8, whatever the variant); a pack of 8 filters is computed OR filters at a time.
 *
 * NaN and inf propagate as in the reference: the fused ReLU stores max(y, 0) with NaN kept (y < 0 ? 0 : y).
 */
#include "isa.h"
#define OB 8
#define OR CONV_FILTERS_IN_REGS
#define STORE_RELU 1
#define STORE_ADD 2
#define PB CONV_POSITIONS

static inline __attribute__((always_inline)) void
conv_sample(const float *x, long c_n, long plane, const float *wpk, long o_n, const long *off, long kk, long oh,
            long ow, long wp, const float *bias, int flags, float *y)
{
    const int relu = flags & STORE_RELU, add = flags & STORE_ADD;
    const long span = oh * wp;
    for (long ob = 0; ob * OB < o_n; ob++) {
        for (long h = 0; h < OB && ob * OB + h < o_n; h += OR) /* OR of the pack's 8 filters at a time */
        for (long p0 = 0; p0 < span; p0 += PB) {
            float acc[OR][PB];
            for (int q = 0; q < OR; q++)
                for (int v = 0; v < PB; v++)
                    acc[q][v] = 0.0f;
            for (long c = 0; c < c_n; c++) {
                const float *xc = x + c * plane + p0;
                const float *wc = wpk + (ob * c_n + c) * kk * OB;
                for (long t = 0; t < kk; t++) {
                    const float *xs = xc + off[t];
                    const float *wv = wc + t * OB + h;
                    for (int q = 0; q < OR; q++) {
                        const float wq = wv[q];
                        for (int v = 0; v < PB; v++)
                            acc[q][v] += wq * xs[v];
                    }
                }
            }
            /* store the block row segment by row segment (positions col >= ow dropped): contiguous runs of y */
            long v = 0, r = p0 / wp, col = p0 - (p0 / wp) * wp;
            while (v < PB && p0 + v < span) {
                long run = wp - col; /* positions left in this row of the block */
                if (run > PB - v)
                    run = PB - v;
                if (run > span - p0 - v)
                    run = span - p0 - v;
                const long keep = col < ow ? (ow - col < run ? ow - col : run) : 0;
                for (int q = 0; q < OR && ob * OB + h + q < o_n; q++) {
                    const long o = ob * OB + h + q;
                    const float b = bias ? bias[o] : 0.0f;
                    float *yo = y + (o * oh + r) * ow + col;
                    for (long k = 0; k < keep; k++) {
                        const float value = acc[q][v + k] + b + (add ? yo[k] : 0.0f);
                        yo[k] = relu_if(relu, value);
                    }
                }
                v += run;
                col += run;
                if (col == wp) {
                    col = 0;
                    r++;
                }
            }
        }
    }
}

/* n_n samples: x (n_n, c_n, plane), y (n_n, o_n, oh, ow); bias may be NULL; flags: STORE_RELU, STORE_ADD.
 * 3x3 kernels (kk = 9) get their own copy of the loops with the tap count known to the compiler: 1.5x faster
 * than the generic one. */
void convnp_conv2d_s1(const float *x, long n_n, long c_n, long plane, const float *wpk, long o_n,
                      const long *off, long kk, long oh, long ow, long wp, const float *bias, int flags, float *y)
{
    for (long n = 0; n < n_n; n++) {
        const float *xn = x + n * c_n * plane;
        float *yn = y + n * o_n * oh * ow;
        if (kk == 9)
            conv_sample(xn, c_n, plane, wpk, o_n, off, 9, oh, ow, wp, bias, flags, yn);
        else
            conv_sample(xn, c_n, plane, wpk, o_n, off, kk, oh, ow, wp, bias, flags, yn);
    }
}

/* the variant this library was built for (isa.h): "avx512", "avx2" or "generic" */
const char *convnp_variant(void) { return CONVNP_VARIANT; }
