/* convnp.accel: direct convolution vectorized over filters (layers with a multiple of 32 filters; the forward
 * also takes a multiple of 16, one vector of filters per block).
 *
 * The kernels of direct_conv.c and direct_dw.c vectorize over positions of the wide padded rows, so the
 * Wp - OW padding columns of every row are computed and thrown away: on a 7x7 map with a 3x3 kernel (Wp = 9)
 * a fifth of the work. Here the 16 lanes of a vector are 16 filters instead, and only real output
 * positions are computed:
 *
 *   forward   y[n, o, r, q] = b[o] + sum_c sum_t w[c, t, o] * x[n, c, r*sh*wp + q*sw + off[t]]
 *             OV vectors of filters x PP output positions (isa.h; AVX-512: 2 x 14 = 28 accumulators;
 *             per (c, t): 2 filter loads, 14 broadcasts of x, 28 FMAs).
 *   weights   dw[c, t, o] += sum_n sum_{r, q} dy[n, o, r, q] * x[n, c, r*sh*wp + q*sw + off[t]]
 *             dy is first transposed per sample to (position, filter) (masked by a fused ReLU's output);
 *             OV vectors of filters x up to MAX_TAPS taps (AVX-512: 2 x 9 = 18 accumulators; per position: 2 dy
 *             loads, one broadcast of x per tap, 2 FMAs per tap). No sum across lanes: each lane is its own filter.
 *
 * A forward block whose PP positions are one run of an output row, or two whole rows (stride 1; a 14x14 map's
 * rows, a 7x7 map's pairs of rows with PP = 14) reads x at constant offsets from one pointer per run (cv_block's
 * ``runs``) instead of through the position table: one load per broadcast instead of two.
 *
 * A forward with a multiple of LANES filters but not of OV * LANES (16 on AVX-512) takes blocks of one vector
 * of filters x OV * PP positions (AVX-512: 1 x 28; a 14x14 map's two rows at constant offsets): the same 28
 * accumulators, one broadcast per FMA instead of one per OV FMAs; 10-15% faster than the wide-row kernel of
 * direct_conv.c from 16 channels on (docs/performance.md).
 *
 * Filters come in multiples of 32 (2 vectors) otherwise; weights are packed (c, t, o) (o contiguous). A stride
 * (sh, sw) only moves the positions x is broadcast from: strided convolutions need no other kernel here.
 */
#include <stdlib.h>
#include <string.h>

#include "isa.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#define LANES VL /* filters in a vector (isa.h) */
#define STORE_RELU 1 /* flags of the forward's store, as in direct_conv.c */
#define STORE_ADD 2
#define OV CV_VECTORS /* filter vectors per block (isa.h) */
#define PP CV_POSITIONS /* positions per block */
#define MAX_TAPS CV_DW_TAPS
#define CV1_POSITIONS (OV * PP) /* positions per block of a layer with one vector of filters (a multiple of 16) */

/* the block's accumulators: ov vectors of filters x np positions, acc[v * np + p] (ov = OV and np = PP, or
   PP / 2 for a short row's end; ov = 1 and np = OV * PP for a layer of a multiple of LANES filters only) */
static inline __attribute__((always_inline)) void
cv_block(const float *x, long c_n, long plane, const float *wv, long o_n, const long *off, long kk, const long *pb,
         const int ov, const int np, const int runs, vf *acc)
{
    /* ov, np and runs are compile-time constants. runs: 0, each position starts where the table pb says; 1 or 2,
       the positions are that many runs of consecutive columns, each starting at pb[its first position]: x is
       then read at constant offsets from one pointer per run (one load per broadcast instead of two) */
    const int len = runs ? np / runs : 1; /* positions per run */
    /* (GCC peels loops of up to 16 iterations by itself: 28 positions need the pragma, or acc lives in memory) */
#pragma GCC unroll 32
    for (int a = 0; a < ov * np; a++)
        acc[a] = (vf){0};
    for (long c = 0; c < c_n; c++) {
        const float *xc = x + c * plane;
        const float *wc = wv + c * kk * o_n;
        const float *r0 = xc + (runs ? pb[0] : 0), *r1 = xc + (runs == 2 ? pb[len] : 0);
        for (long t = 0; t < kk; t++) {
            vf wt[OV];
            for (int v = 0; v < ov; v++)
                wt[v] = *(const vfu *)(wc + t * o_n + v * LANES);
#pragma GCC unroll 32
            for (int p = 0; p < np; p++) {
                const float xv = runs == 0 ? xc[pb[p] + off[t]] : (p < len ? r0 : r1)[off[t] + p % len];
                for (int v = 0; v < ov; v++)
                    acc[v * np + p] += wt[v] * xv;
            }
        }
    }
}

/* one block, with the common tap count (3x3) known to the compiler */
#define CV_BLOCK(OVN, NP, RUNS)                                                                                    \
    do {                                                                                                           \
        if (kk == 9)                                                                                               \
            cv_block(xc, cn, plane, wc, o_n, off, 9, pos + p0, OVN, NP, RUNS, acc);                                \
        else                                                                                                       \
            cv_block(xc, cn, plane, wc, o_n, off, kk, pos + p0, OVN, NP, RUNS, acc);                               \
    } while (0)

/* the blocks of one chunk of channels for ov vectors of filters and pp positions per block: one row, two whole
   rows or a short row's end read at constant offsets, else through the position table; their sums added into
   part (position, filter) */
#define CV_BLOCKS(OVN, PPN)                                                                                        \
    for (long p0 = 0; p0 < positions; p0 += PPN) {                                                                 \
        vf acc[OVN * PPN];                                                                                         \
        const long keep = positions - p0 < PPN ? positions - p0 : PPN;                                             \
        const int row = sw == 1 && p0 / ow == (p0 + keep - 1) / ow; /* all in one output row */                  \
        if (keep == PPN && row)                                                                                    \
            CV_BLOCK(OVN, PPN, 1);                                                                                 \
        else if (keep == PPN && sw == 1 && 2 * ow == PPN && p0 % ow == 0) /* two whole rows */                     \
            CV_BLOCK(OVN, PPN, 2);                                                                                 \
        else if (keep <= PPN / 2 && row) /* the end of a short map */                                              \
            CV_BLOCK(OVN, PPN / 2, 1);                                                                             \
        else                                                                                                       \
            CV_BLOCK(OVN, PPN, 0);                                                                                 \
        const long np = keep <= PPN / 2 && row ? PPN / 2 : PPN; /* (how acc was laid out) */                       \
        vfu *pp = (vfu *)(part + p0 * width);                                                                      \
        for (int p = 0; p < keep; p++) /* (a half block's other accumulators are unset) */                         \
            for (int v = 0; v < OVN; v++)                                                                          \
                pp[p * OVN + v] = c0 ? (vf)pp[p * OVN + v] + acc[v * np + p] : acc[v * np + p];                  \
    }

/* channels per chunk of the forward: the chunk's weights for one block of filters (cc * kk * OV * LANES floats)
   stay in L1 while every position block of a sample reads them */
#ifndef CV_CHUNK_FLOATS
#define CV_CHUNK_FLOATS (3 * 1024)
#endif

/* y[p] = part[p * width] + b (+ y[p]), max(., 0) with relu (NaN kept), p < positions: one filter's row of the
   output from the (position, filter) partial sums. On AVX-512 16 positions at a time with a gather (a scalar loop
   took a fifth of a 14x14 forward); the same sums in the same order as the scalar tail */
static void cv_store(const float *part, long width, long positions, float b, int relu, int add, float *y)
{
    long p = 0;
#if defined(__AVX512F__)
    const __m512i index = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32((int)width));
    const __m512 bias = _mm512_set1_ps(b), zero = _mm512_setzero_ps();
    for (; p + 16 <= positions; p += 16) {
        __m512 v = _mm512_add_ps(_mm512_i32gather_ps(index, part + p * width, 4), bias);
        if (add)
            v = _mm512_add_ps(v, _mm512_loadu_ps(y + p));
        if (relu) /* max(0, v) returns v when v is NaN */
            v = _mm512_max_ps(zero, v);
        _mm512_storeu_ps(y + p, v);
    }
#endif
    for (; p < positions; p++)
        y[p] = relu_if(relu, part[p * width] + b + (add ? y[p] : 0.0f));
}

/* where a forward reads its samples: x padded already (NULL), or each sample of src (n_n, c_n, h, w) zero-padded
   (times mask > 0 when a mask is given) at (top, left) into scratch (c_n planes of hp1 x wp, then zeroed slack)
   just before its blocks read it: no padded copy of the batch goes through memory (pad.c) */
struct cv_padding {
    const float *src, *mask;
    long h, w, top, left, hp1;
    float *scratch;
};

void convnp_pad_planes(const float *x, const float *mask, long planes, long h, long w, long t, long l, long hp1,
                       long wp, float *out);

/* n_n samples: x (n_n, c_n, plane) padded input, wv (c_n, kk, o_n) with o_n a multiple of 32, y (n_n, o_n, oh, ow);
 * bias may be NULL; flags as in direct_conv.c. Stride (sh, sw): output (r, q) reads x at r*sh*wp + q*sw + off[t].
 * A block is PP consecutive output positions of the flattened (oh, ow) map (one or two whole rows, or the end of
 * a row, read at constant offsets; else through a position table). The channels are taken in chunks whose
 * weights stay in L1 across the position blocks; partial sums wait in ``part`` (position, filter).
 * Returns -1 when memory ran out (nothing written), else 0. */
static int cv_forward(const float *x, long n_n, long c_n, long plane, const float *wv, long o_n, const long *off,
                      long kk, long oh, long ow, long wp, long sh, long sw, const float *bias, int flags, float *y,
                      const struct cv_padding *pad)
{
    const int relu = flags & STORE_RELU, add = flags & STORE_ADD;
    /* filters per block: OV vectors, or one vector of twice the positions for a multiple of LANES only */
    const int ov = o_n % (OV * LANES) == 0 ? OV : 1;
    const long block = ov == OV ? PP : CV1_POSITIONS, positions = oh * ow;
    const long padded = (positions + block - 1) / block * block;
    const long width = ov * LANES;
    long chunks = (c_n * kk * width + CV_CHUNK_FLOATS - 1) / CV_CHUNK_FLOATS;
    chunks = chunks < 1 ? 1 : (chunks > c_n ? c_n : chunks);
    const long cc = (c_n + chunks - 1) / chunks; /* channels per chunk, balanced */
    long *pos = malloc((size_t)padded * sizeof(long));
    float *part = malloc((size_t)padded * width * sizeof(float));
    if (!pos || !part) {
        free(pos);
        free(part);
        return -1;
    }
    for (long i = 0; i < padded; i++) { /* the tail repeats the last position: computed, not stored */
        const long k = i < positions ? i : positions - 1;
        pos[i] = (k / ow) * sh * wp + (k % ow) * sw;
    }
    for (long n = 0; n < n_n; n++) {
        const float *xn = x + n * c_n * plane;
        if (pad) {
            const long at = n * c_n * pad->h * pad->w;
            convnp_pad_planes(pad->src + at, pad->mask ? pad->mask + at : 0, c_n, pad->h, pad->w, pad->top,
                              pad->left, pad->hp1, wp, pad->scratch);
            xn = pad->scratch;
        }
        float *yn = y + n * o_n * positions;
        for (long o0 = 0; o0 < o_n; o0 += width) {
            for (long c0 = 0; c0 < c_n; c0 += cc) {
                const long cn = c_n - c0 < cc ? c_n - c0 : cc;
                const float *xc = xn + c0 * plane, *wc = wv + c0 * kk * o_n + o0;
                if (ov == OV)
                    CV_BLOCKS(OV, PP)
                else
                    CV_BLOCKS(1, CV1_POSITIONS)
            }
            for (long i = 0; i < width; i++) /* (position, filter) -> y (filter, position) */
                cv_store(part + i, width, positions, bias ? bias[o0 + i] : 0.0f, relu, add, yn + (o0 + i) * positions);
        }
    }
    free(pos);
    free(part);
    return 0;
}

int convnp_conv2d_cv(const float *x, long n_n, long c_n, long plane, const float *wv, long o_n, const long *off,
                     long kk, long oh, long ow, long wp, long sh, long sw, const float *bias, int flags, float *y)
{
    return cv_forward(x, n_n, c_n, plane, wv, o_n, off, kk, oh, ow, wp, sh, sw, bias, flags, y, 0);
}

/* convnp_conv2d_cv of src (n_n, c_n, h, w) zero-padded at (top, left) to planes (hp1, wp) (times mask > 0 when
 * mask is not NULL), one sample at a time into a buffer of its own. Returns -1 when memory ran out, else 0. */
int convnp_conv2d_cv_padding(const float *src, const float *mask, long h, long w, long top, long left, long hp1,
                             long n_n, long c_n, const float *wv, long o_n, const long *off, long kk, long oh,
                             long ow, long wp, long sh, long sw, const float *bias, int flags, float *y)
{
    const long plane = hp1 * wp;
    float *scratch = calloc((size_t)(c_n * plane + 2 * wp + 64), sizeof(float)); /* zeroed slack after it */
    if (!scratch)
        return -1;
    const struct cv_padding pad = {src, mask, h, w, top, left, hp1, scratch};
    const int status = cv_forward(0, n_n, c_n, plane, wv, o_n, off, kk, oh, ow, wp, sh, sw, bias, flags, y, &pad);
    free(scratch);
    return status;
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
                    const float value = ms ? where_positive(ms[i], d) : d;
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
