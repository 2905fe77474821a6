/* convnp.accel: direct convolution vectorized over filters (layers with a multiple of 32 filters).
 *
 * The kernels of direct_conv.c and direct_dw.c vectorize over positions of the wide padded rows, so the
 * Wp - OW padding columns of every row are computed and thrown away: on a 7x7 map with a 3x3 kernel (Wp = 9)
 * a fifth of the work. Here the 16 lanes of a vector are 16 filters instead, and only real output
 * positions are computed:
 *
 *   forward   y[n, o, r, q] = b[o] + sum_c sum_t w[c, t, o] * x[n, c, r*sh*wp + q*sw + off[t]]
 *             OV vectors of filters x PP positions of one output row (isa.h; AVX-512: 2 x 7 = 14 accumulators;
 *             per (c, t): 2 filter loads, 7 broadcasts of x, 14 FMAs).
 *   weights   dw[c, t, o] += sum_n sum_{r, q} dy[n, o, r, q] * x[n, c, r*sh*wp + q*sw + off[t]]
 *             dy is first transposed per sample to (position, filter) (masked by a fused ReLU's output);
 *             OV vectors of filters x up to MAX_TAPS taps (AVX-512: 2 x 9 = 18 accumulators; per position: 2 dy
 *             loads, one broadcast of x per tap, 2 FMAs per tap). No sum across lanes: each lane is its own filter.
 *
 * A forward block whose PP positions follow each other in one output row (stride 1; every block of a 7x7 or
 * 14x14 map with PP = 7) reads x at constant offsets from one pointer (cv_block's ``run``) instead of through the
 * position table: one load per broadcast instead of two, (100,32,14,14)->32 forward 2.5 -> 2.0 ms on AVX-512.
 *
 * Filters come in multiples of 32 (2 vectors); weights are packed (c, t, o) (o contiguous). A stride (sh, sw)
 * only moves the positions x is broadcast from: strided convolutions need no other kernel here.
 */
#include <stdlib.h>
#include <string.h>

#include "isa.h"
#define LANES VL /* filters in a vector (isa.h) */
#define STORE_RELU 1 /* flags of the forward's store, as in direct_conv.c */
#define STORE_ADD 2
#define OV CV_VECTORS /* filter vectors per block (isa.h: 2 with AVX-512, 1 with AVX2) */
#define PP CV_POSITIONS /* positions per block */
#define MAX_TAPS CV_DW_TAPS

static inline __attribute__((always_inline)) void
cv_block(const float *x, long c_n, long plane, const float *wv, long o_n, const long *off, long kk, const long *pb,
         const int run, vf acc[OV][PP])
{
    long at[PP]; /* where each of the block's output positions starts in a plane; with ``run`` (a compile-time */
    for (int p = 0; p < PP; p++) /* constant) they follow each other: x read at constant offsets from pb[0] */
        at[p] = pb[p];
    for (int v = 0; v < OV; v++)
        for (int p = 0; p < PP; p++)
            acc[v][p] = (vf){0};
    for (long c = 0; c < c_n; c++) {
        const float *xc = x + c * plane + (run ? pb[0] : 0);
        const float *wc = wv + c * kk * o_n;
        for (long t = 0; t < kk; t++) {
            const float *xs = xc + off[t];
            vf wt[OV];
            for (int v = 0; v < OV; v++)
                wt[v] = *(const vfu *)(wc + t * o_n + v * LANES);
            for (int p = 0; p < PP; p++) {
                const float xv = run ? xs[p] : xs[at[p]];
                for (int v = 0; v < OV; v++)
                    acc[v][p] += wt[v] * xv;
            }
        }
    }
}

/* n_n samples: x (n_n, c_n, plane) padded input, wv (c_n, kk, o_n) with o_n a multiple of 32, y (n_n, o_n, oh, ow);
 * bias may be NULL; flags as in direct_conv.c. Stride (sh, sw): output (r, q) reads x at r*sh*wp + q*sw + off[t].
 * A block is PP consecutive output positions of the flattened (oh, ow) map, across rows: on a 7x7 map with
 * PP = 6 that is 9 blocks, where blocks within a row took 14 (a row of 7 as 6 + 1). Returns -1 when memory ran
 * out (nothing written), else 0. */
int convnp_conv2d_cv(const float *x, long n_n, long c_n, long plane, const float *wv, long o_n, const long *off,
                     long kk, long oh, long ow, long wp, long sh, long sw, const float *bias, int flags, float *y)
{
    const int relu = flags & STORE_RELU, add = flags & STORE_ADD;
    const long positions = oh * ow, padded = (positions + PP - 1) / PP * PP;
    long *pos = malloc((size_t)padded * sizeof(long));
    if (!pos)
        return -1;
    for (long i = 0; i < padded; i++) { /* the tail repeats the last position: computed, not stored */
        const long k = i < positions ? i : positions - 1;
        pos[i] = (k / ow) * sh * wp + (k % ow) * sw;
    }
    for (long n = 0; n < n_n; n++) {
        const float *xn = x + n * c_n * plane;
        float *yn = y + n * o_n * positions;
        for (long o0 = 0; o0 < o_n; o0 += OV * LANES)
            for (long p0 = 0; p0 < positions; p0 += PP) {
                vf acc[OV][PP];
                const int run = sw == 1 && p0 + PP <= positions && p0 / ow == (p0 + PP - 1) / ow; /* one row */
                if (run && kk == 9) /* the common cases with the tap count known to the compiler */
                    cv_block(xn, c_n, plane, wv + o0, o_n, off, 9, pos + p0, 1, acc);
                else if (kk == 9)
                    cv_block(xn, c_n, plane, wv + o0, o_n, off, 9, pos + p0, 0, acc);
                else
                    cv_block(xn, c_n, plane, wv + o0, o_n, off, kk, pos + p0, 0, acc);
                const long keep = positions - p0 < PP ? positions - p0 : PP;
                for (int v = 0; v < OV; v++)
                    for (int l = 0; l < LANES; l++) {
                        const long o = o0 + v * LANES + l;
                        const float b = bias ? bias[o] : 0.0f;
                        float *yo = yn + o * positions + p0;
                        for (long p = 0; p < keep; p++) {
                            const float value = acc[v][p][l] + b + (add ? yo[p] : 0.0f);
                            yo[p] = relu && value < 0.0f ? 0.0f : value; /* NaN kept */
                        }
                    }
            }
    }
    free(pos);
    return 0;
}

static inline __attribute__((always_inline)) void
cv_dw_block(const float *x, long c_n, long plane, const float *dyt, long o_n, long positions, const long *pos,
            const long *off, long kk, long nb, long o0, long c, const int tn, long t0, float *dw)
{
    vf acc[OV][MAX_TAPS];
    for (int v = 0; v < OV; v++)
        for (int t = 0; t < tn; t++)
            acc[v][t] = (vf){0};
    for (long n = 0; n < nb; n++) {
        const float *xc = x + (n * c_n + c) * plane;
        const float *dn = dyt + n * positions * o_n + o0;
        for (long i = 0; i < positions; i++) {
            vf d[OV];
            for (int v = 0; v < OV; v++)
                d[v] = *(const vfu *)(dn + i * o_n + v * LANES);
            const float *xs = xc + pos[i];
            for (int t = 0; t < tn; t++) {
                const float xv = xs[off[t0 + t]];
                for (int v = 0; v < OV; v++)
                    acc[v][t] += d[v] * xv;
            }
        }
    }
    for (int t = 0; t < tn; t++) {
        vfu *out0 = (vfu *)(dw + (c * kk + t0 + t) * o_n + o0);
        for (int v = 0; v < OV; v++)
            out0[v] = out0[v] + acc[v][t];
    }
}

/* n_n samples: x (n_n, c_n, plane) padded input, dy and mask (n_n, o_n, oh, ow) (mask may be NULL), o_n a
 * multiple of 32, stride (sh, sw) as in convnp_conv2d_cv. ADDS into dw (c_n, kk, o_n) and db (o_n). Returns 0,
 * or -1 when memory ran out. */
int convnp_conv2d_dw_cv(const float *x, long n_n, long c_n, long plane, const float *dy, const float *mask,
                        long o_n, long oh, long ow, long wp, long sh, long sw, const long *off, long kk, float *dw,
                        float *db)
{
    const long positions = oh * ow;
    /* samples per block: their transposed dy (2 vectors of filters) and one x plane each stay in L1 */
    long nb = (24 * 1024) / ((positions * OV * LANES + plane) * (long)sizeof(float));
    nb = nb < 1 ? 1 : (nb > n_n ? n_n : nb);
    float *dyt = malloc((size_t)nb * positions * o_n * sizeof(float));
    long *pos = malloc((size_t)positions * sizeof(long));
    if (!dyt || !pos) {
        free(dyt);
        free(pos);
        return -1;
    }
    for (long r = 0; r < oh; r++)
        for (long q = 0; q < ow; q++)
            pos[r * ow + q] = r * sh * wp + q * sw;
    for (long n0 = 0; n0 < n_n; n0 += nb) {
        const long m = n_n - n0 < nb ? n_n - n0 : nb;
        for (long n = 0; n < m; n++) /* transpose (o, position) -> (position, o), masked */
            for (long o = 0; o < o_n; o++) {
                const float *src = dy + ((n0 + n) * o_n + o) * positions;
                const float *ms = mask ? mask + ((n0 + n) * o_n + o) * positions : 0;
                float *dst = dyt + n * positions * o_n + o;
                float sum = 0.0f;
                for (long i = 0; i < positions; i++) {
                    const float d = src[i];
                    const float value = ms && !(ms[i] > 0.0f) ? 0.0f : d;
                    dst[i * o_n] = value;
                    sum += value;
                }
                if (db)
                    db[o] += sum;
            }
        const float *xb = x + n0 * c_n * plane;
        for (long o0 = 0; o0 < o_n; o0 += OV * LANES)
            for (long c = 0; c < c_n; c++)
                for (long t0 = 0; t0 < kk; t0 += MAX_TAPS) {
                    const long tn = kk - t0 < MAX_TAPS ? kk - t0 : MAX_TAPS;
                    switch (tn) { /* the tap count known to the compiler: the accumulators stay in registers */
#define CV_TAPS(T)                                                                                                 \
    case T:                                                                                                        \
        cv_dw_block(xb, c_n, plane, dyt, o_n, positions, pos, off, kk, m, o0, c, T, t0, dw);                       \
        break;
                        CV_TAPS(1) CV_TAPS(2)
#if MAX_TAPS > 3
                        CV_TAPS(3) CV_TAPS(4) CV_TAPS(5)
#endif
#if MAX_TAPS > 6
                        CV_TAPS(6) CV_TAPS(7) CV_TAPS(8)
#endif
                        default: cv_dw_block(xb, c_n, plane, dyt, o_n, positions, pos, off, kk, m, o0, c, MAX_TAPS, t0,
                                             dw);
                    }
                }
    }
    free(dyt);
    free(pos);
    return 0;
}
