/* convnp.accel: weight gradient of a stride-1 convolution, computed directly (no patch matrix).
 *
 * dw[o, c, t] = sum_n sum_{r < oh, q < ow} dy[n, o, r, q] * x[n, c, r*wp + q + off[t]]
 *
 * x is the same zero-padded wide layout as in direct_conv.c (planes of rows `wp` long, off[t] the flat offset
 * of kernel tap t). dy is first copied, a block of samples at a time, into rows `wp` long with zeros at
 * q >= ow and after the last row (up to a multiple of 16): then each tap is one contiguous run of x times one
 * contiguous run of dy, and the columns the forward threw away contribute zeros.
 *
 * With a `mask` (the ReLU output that followed the convolution) dy counts only where mask > 0: the ReLU's
 * backward happens in that copy. `db`, when given, gets the bias gradient (the sum of the copied dy per filter).
 *
 * Sums run in vectors of the CPU's width (isa.h: 16 floats with AVX-512, 8 with AVX2): FB filters x up to 6
 * taps of vector accumulators in registers (AVX-512: 4 x 6 = 24); each vector step costs FB loads of dy, one
 * load of x per tap and FB FMAs per tap. A pass runs over a block of samples small enough that its dy
 * rows and x planes stay in L1, then adds its lanes (a tree sum) into dw: the caller's dw is the partial
 * sum of one piece of the batch, so the result does not depend on which thread ran which piece.
 */
#include <stdlib.h>
#include <string.h>

#include "isa.h"
#define LANES 16 /* dy runs are rounded up to 16 floats (a multiple of every variant's vector) */
#define MAX_TAPS DW_TAPS /* isa.h: 6 */
#define FB DW_FILTERS    /* isa.h: 4 filters with AVX-512, 2 with AVX2 */
#define BLOCK_BYTES (24 * 1024) /* half of a 48 KiB L1 */

static inline __attribute__((always_inline)) void
dw_tile(const float *x, long c_n, long plane, const float *dyw, long dstride, long o_n, long span16, const long *off,
        long kk, long nb, long o0, long t0, const int db, const int tn, float *dw)
{
    for (long c = 0; c < c_n; c++) {
        vf a[FB][MAX_TAPS];
        for (int q = 0; q < db; q++)
            for (int t = 0; t < tn; t++)
                a[q][t] = (vf){0};
        for (long n = 0; n < nb; n++) {
            const float *xc = x + (n * c_n + c) * plane;
            const float *d0 = dyw + (n * o_n + o0) * dstride;
            for (long p = 0; p < span16; p += VL) {
                vf d[FB];
                for (int q = 0; q < db; q++)
                    d[q] = *(const vfu *)(d0 + q * dstride + p);
                for (int t = 0; t < tn; t++) {
                    const vf xv = *(const vfu *)(xc + p + off[t0 + t]);
                    for (int q = 0; q < db; q++)
                        a[q][t] += d[q] * xv;
                }
            }
        }
        for (int q = 0; q < db; q++)
            for (int t = 0; t < tn; t++)
                dw[((o0 + q) * c_n + c) * kk + t0 + t] += vf_sum(a[q][t]);
    }
}

#define TILE(DB, TN) dw_tile(x, c_n, plane, dyw, dstride, o_n, span16, off, kk, nb, o0, t0, DB, TN, dw)
#define TILES(DB)                                                                                                  \
    switch (tn) { /* the tap count known to the compiler: the accumulators stay in registers */                  \
    case 1: TILE(DB, 1); break;                                                                                    \
    case 2: TILE(DB, 2); break;                                                                                    \
    case 3: TILE(DB, 3 < MAX_TAPS ? 3 : MAX_TAPS); break;                                                          \
    case 4: TILE(DB, 4 < MAX_TAPS ? 4 : MAX_TAPS); break;                                                          \
    case 5: TILE(DB, 5 < MAX_TAPS ? 5 : MAX_TAPS); break;                                                          \
    default: TILE(DB, MAX_TAPS); break;                                                                            \
    }

/* samples per block: what one (filter block, channel) pass reads, FB rows of dy and a plane of x per sample,
 * should stay in L1 while the pass runs over it */
static long samples_per_block(long dy_floats, long plane, long n_n)
{
    const long per_sample = (FB * dy_floats + plane) * (long)sizeof(float);
    const long nb = BLOCK_BYTES / (per_sample > 0 ? per_sample : 1);
    return nb < 1 ? 1 : (nb > n_n ? n_n : nb);
}

static void dw_samples(const float *x, long c_n, long plane, const float *dyw, long dstride, long o_n, long span16,
                       const long *off, long kk, long nb, float *dw)
{
    for (long o0 = 0; o0 < o_n; o0 += FB) {
        for (long t0 = 0; t0 < kk; t0 += MAX_TAPS) {
            const long tn = kk - t0 < MAX_TAPS ? kk - t0 : MAX_TAPS;
            const long rest = o_n - o0;
            if (rest >= FB) {
                TILES(FB)
#if FB > 3
            } else if (rest == 3) {
                TILES(3)
#endif
#if FB > 2
            } else if (rest == 2) {
                TILES(2)
#endif
            } else {
                TILES(1)
            }
        }
    }
}

/* n_n samples: x (n_n, c_n, plane) wide padded input, dy and mask (n_n, o_n, oh, ow) (mask may be NULL).
 * ADDS into dw (o_n, c_n, kk) and db (o_n). Returns 0, or -1 when memory ran out (nothing is added then). */
int convnp_conv2d_dw_s1(const float *x, long n_n, long c_n, long plane, const float *dy, const float *mask,
                        long o_n, long oh, long ow, long wp, const long *off, long kk, float *dw, float *db)
{
    const long span16 = (oh * wp + LANES - 1) / LANES * LANES;
    const long nb = samples_per_block(span16, plane, n_n);
    const size_t dyw_bytes = ((size_t)nb * o_n * span16 * sizeof(float) + 63) / 64 * 64;
    float *dyw = aligned_alloc(64, dyw_bytes);
    if (!dyw)
        return -1;
    memset(dyw, 0, dyw_bytes); /* the q >= ow columns and the tail stay zero */
    for (long n0 = 0; n0 < n_n; n0 += nb) {
        const long m = n_n - n0 < nb ? n_n - n0 : nb;
        for (long n = 0; n < m; n++)
            for (long o = 0; o < o_n; o++) {
                for (long r = 0; r < oh; r++) {
                    const long at = (((n0 + n) * o_n + o) * oh + r) * ow;
                    float *row = dyw + (n * o_n + o) * span16 + r * wp;
                    if (mask) {
                        for (long q = 0; q < ow; q++) { /* both loads unconditional: vectorizes */
                            const float d = dy[at + q];
                            row[q] = where_positive(mask[at + q], d);
                        }
                    } else {
                        memcpy(row, dy + at, ow * sizeof(float));
                    }
                }
                if (db) { /* the row's zeros add nothing: sum the whole wide run in vectors */
                    const vf *run = (const vf *)(dyw + (n * o_n + o) * span16);
                    vf sum = {0};
                    for (long p = 0; p < span16 / VL; p++)
                        sum += run[p];
                    for (int l = 0; l < VL; l++)
                        db[o] += sum[l];
                }
            }
        dw_samples(x + n0 * c_n * plane, c_n, plane, dyw, span16, o_n, span16, off, kk, m, dw);
    }
    free(dyw);
    return 0;
}

/* The same sums when dy is already wide: the run of (n, o) is the span16 floats at dyw + (n*o_n + o)*dy_plane
 * (zeros at q >= ow and after the last row: the interior of the zero-padded dy that dx's convolution reads,
 * when its rows are as long as x's). No copy, no mask (the padding applied it). */
void convnp_conv2d_dw_wide_s1(const float *x, long n_n, long c_n, long plane, const float *dyw, long dy_plane,
                              long o_n, long oh, long wp, const long *off, long kk, float *dw, float *db)
{
    const long span16 = (oh * wp + LANES - 1) / LANES * LANES;
    const long nb = samples_per_block(dy_plane, plane, n_n);
    if (db)
        for (long n = 0; n < n_n; n++)
            for (long o = 0; o < o_n; o++) {
                const float *run = dyw + (n * o_n + o) * dy_plane;
                vf sum = {0};
                for (long p = 0; p < span16; p += VL)
                    sum += *(const vfu *)(run + p);
                for (int l = 0; l < VL; l++)
                    db[o] += sum[l];
            }
    for (long n0 = 0; n0 < n_n; n0 += nb) {
        const long m = n_n - n0 < nb ? n_n - n0 : nb;
        dw_samples(x + n0 * c_n * plane, c_n, plane, dyw + n0 * o_n * dy_plane, dy_plane, o_n, span16, off, kk, m,
                   dw);
    }
}
