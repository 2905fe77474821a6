/* convnp.accel: the memory-bound steps around the matrix products, one pass each (float32).
 *
 * Each function computes what a NumPy function of convnp computes (the NumPy code stays the reference, and
 * tests/accel/test_accel.py compares the two): NumPy makes several passes (a max pool with its argmax, a ReLU backward
 * through a boolean temporary) where these make one, over one image plane at a time while it is in cache.
 *
 *   relu_backward       out = dy where ref > 0, else 0                         activation.relu_backward
 *   max_pool            y = window max, arg = flat index (row*wp + col) of     pooling.max_pool2d_forward
 *                       its first max (row-major), NaN and -1 for a window
 *                       holding a NaN
 *   max_pool_backward   dx = 0, then dx[arg] += dy                             pooling.max_pool2d_backward
 *   gemm_to_nchw        out[n, o, r, q] = y2[o, n, r, q] (+ bias[o])           conv_gemm._gemm_to_nchw
 *   nchw_to_gemm        out[o, n, r, q] = dy[n, o, r, q], 0 for q >= ow        conv_gemm._nchw_to_gemm
 *   col2im_wide         out[n, c, i*dh*wp + j*dw + p] += col[c, i, j, n, p]    conv_gemm._col2im_wide
 *   col2im_nc           x[n, c, r*sh + i*dh, q*sw + j*dw] += col[n, c, i, j,   conv_gemm._col2im
 *                       r, q]
 */
#include <math.h>
#include <string.h>

#include "isa.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/* the 2x2 stride-2 pool as a vectorized row of selects (pool_planes_2x2s2): with 8 or 4 floats it is 4x faster
   than pool_planes (0.5 against 2.1-2.3 ms for (100,30,24,24)); with 16-float vectors (AVX-512) a 12-wide row
   vectorizes badly (1.2 ms against pool_planes' 0.6), so there rows of up to 16 outputs take
   pool_planes_2x2s2_short, one vector per output row */

/* sum of a row in vector lanes (a fixed order: the same result on every run), then its tail */
static inline float row_sum(const float *a, long l)
{
    vf acc = {0};
    long i = 0;
    for (; i + VL <= l; i += VL)
        acc += *(const vfu *)(a + i);
    float s = vf_sum(acc);
    for (; i < l; i++)
        s += a[i];
    return s;
}

/* sum of a[i]*b[i] over a row, as row_sum */
static inline float row_dot(const float *a, const float *b, long l)
{
    vf acc = {0};
    long i = 0;
    for (; i + VL <= l; i += VL)
        acc += *(const vfu *)(a + i) * *(const vfu *)(b + i);
    float s = vf_sum(acc);
    for (; i < l; i++)
        s += a[i] * b[i];
    return s;
}

void convnp_relu_backward(const float *dy, const float *ref, long size, float *out)
{
    for (long i = 0; i < size; i++) /* both loads unconditional: vectorizes */
        out[i] = where_positive(ref[i], dy[i]);
}

/* k x k windows (k = 2 or 3 get their own copies with k known to the compiler) of planes (hp, wp) */
static inline __attribute__((always_inline)) void
pool_planes(const float *x, long planes, long hp, long wp, const long k, long sh, long sw, long oh, long ow,
            float *y, int *arg)
{
    for (long p = 0; p < planes; p++) {
        const float *xp = x + p * hp * wp;
        float *yp = y + p * oh * ow;
        int *ap = arg + p * oh * ow;
        for (long r = 0; r < oh; r++)
            for (long q = 0; q < ow; q++) {
                const long top = r * sh, left = q * sw;
                float best = xp[top * wp + left];
                long at = top * wp + left;
                int nan = 0;
                for (long i = 0; i < k; i++)
                    for (long j = 0; j < k; j++) {
                        const long idx = (top + i) * wp + left + j;
                        const float v = xp[idx];
                        nan |= v != v;
                        at = v > best ? idx : at; /* a tie keeps the earlier (row-major) cell; selects, no */
                        best = v > best ? v : best; /* branch (ReLU outputs mispredict half of them) */
                    }
                yp[r * ow + q] = nan ? NAN : best;
                ap[r * ow + q] = nan ? -1 : (int)at;
            }
    }
}

/* 2x2 windows, stride 2: the same result as pool_planes, the window's four cells as selects (no branches) */
static void pool_planes_2x2s2(const float *x, long planes, long hp, long wp, long oh, long ow, float *y, int *arg)
{
    for (long p = 0; p < planes; p++)
        for (long r = 0; r < oh; r++) {
            const float *top = x + (p * hp + 2 * r) * wp, *bottom = top + wp;
            float *yr = y + (p * oh + r) * ow;
            int *ar = arg + (p * oh + r) * ow;
            const int base = (int)(2 * r * wp);
            for (long q = 0; q < ow; q++) {
                const float a = top[2 * q], b = top[2 * q + 1], c = bottom[2 * q], d = bottom[2 * q + 1];
                const int nan = (a != a) | (b != b) | (c != c) | (d != d);
                float best = a;
                int at = base + 2 * (int)q;
                at = b > best ? base + 2 * (int)q + 1 : at; /* a tie keeps the earlier (row-major) cell */
                best = b > best ? b : best;
                at = c > best ? base + (int)wp + 2 * (int)q : at;
                best = c > best ? c : best;
                at = d > best ? base + (int)wp + 2 * (int)q + 1 : at;
                best = d > best ? d : best;
                yr[q] = nan ? NAN : best;
                ar[q] = nan ? -1 : at;
            }
        }
}

#if defined(__AVX512F__)
/* 2x2 windows, stride 2, at most 16 outputs a row (7x7 to 32x32 maps): the same result as pool_planes_2x2s2, one
   output row per vector: the two input rows' 2 * ow floats loaded with masks (two vectors each), their even and
   odd columns (the windows' left and right cells) gathered by two-source permutes, the maximum and its index
   chosen by masked blends in the same order as the scalar selects. One thread: (6400, 7, 7) planes 0.47 ->
   0.09 ms, (3200, 14, 14) 0.36 -> 0.15, (1600, 28, 28) 0.55 -> 0.29, (3000, 24, 24) 0.74 -> 0.38 (pool_planes) */
static void pool_planes_2x2s2_short(const float *x, long planes, long hp, long wp, long oh, long ow, float *y,
                                    int *arg)
{
    const long n_lo = 2 * ow < 16 ? 2 * ow : 16, n_hi = 2 * ow - n_lo; /* floats of a row in each vector */
    const __mmask16 lo_mask = (__mmask16)((1u << n_lo) - 1), hi_mask = (__mmask16)((1u << n_hi) - 1);
    const __mmask16 out_mask = (__mmask16)((1u << ow) - 1);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512 nan = _mm512_set1_ps(NAN);
    const __m512i none = _mm512_set1_epi32(-1), one = _mm512_set1_epi32(1), row = _mm512_set1_epi32((int)wp);
    for (long p = 0; p < planes; p++)
        for (long r = 0; r < oh; r++) {
            const float *top = x + (p * hp + 2 * r) * wp, *bottom = top + wp;
            const __m512 t0 = _mm512_maskz_loadu_ps(lo_mask, top), t1 = _mm512_maskz_loadu_ps(hi_mask, top + 16);
            const __m512 u0 = _mm512_maskz_loadu_ps(lo_mask, bottom), u1 = _mm512_maskz_loadu_ps(hi_mask, bottom + 16);
            const __m512 a = _mm512_permutex2var_ps(t0, even, t1), b = _mm512_permutex2var_ps(t0, odd, t1);
            const __m512 c = _mm512_permutex2var_ps(u0, even, u1), d = _mm512_permutex2var_ps(u0, odd, u1);
            const __m512i at_a = _mm512_add_epi32(even, _mm512_set1_epi32((int)(2 * r * wp)));
            __m512 best = a;
            __m512i at = at_a;
            __mmask16 m = _mm512_cmp_ps_mask(b, best, _CMP_GT_OQ); /* a tie keeps the earlier (row-major) cell */
            at = _mm512_mask_mov_epi32(at, m, _mm512_add_epi32(at_a, one));
            best = _mm512_mask_mov_ps(best, m, b);
            m = _mm512_cmp_ps_mask(c, best, _CMP_GT_OQ);
            at = _mm512_mask_mov_epi32(at, m, _mm512_add_epi32(at_a, row));
            best = _mm512_mask_mov_ps(best, m, c);
            m = _mm512_cmp_ps_mask(d, best, _CMP_GT_OQ);
            at = _mm512_mask_mov_epi32(at, m, _mm512_add_epi32(_mm512_add_epi32(at_a, row), one));
            best = _mm512_mask_mov_ps(best, m, d);
            const __mmask16 any_nan = _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q) |
                                      _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q);
            _mm512_mask_storeu_ps(y + (p * oh + r) * ow, out_mask, _mm512_mask_mov_ps(best, any_nan, nan));
            _mm512_mask_storeu_epi32(arg + (p * oh + r) * ow, out_mask, _mm512_mask_mov_epi32(at, any_nan, none));
        }
}
#endif

static void pool_dispatch(const float *x, long planes, long hp, long wp, long k, long sh, long sw, long oh, long ow,
                          float *y, int *arg)
{
#if defined(__AVX512F__)
    if (k == 2 && sh == 2 && sw == 2 && ow <= 16) {
        pool_planes_2x2s2_short(x, planes, hp, wp, oh, ow, y, arg);
        return;
    }
#endif
    if (k == 2 && sh == 2 && sw == 2)
        pool_planes_2x2s2(x, planes, hp, wp, oh, ow, y, arg);
    else if (k == 2)
        pool_planes(x, planes, hp, wp, 2, sh, sw, oh, ow, y, arg);
    else if (k == 3)
        pool_planes(x, planes, hp, wp, 3, sh, sw, oh, ow, y, arg);
    else
        pool_planes(x, planes, hp, wp, k, sh, sw, oh, ow, y, arg);
}

/* max pool of planes (h, w) padded with -inf (``top``/``left`` before, to (hp, wp) after): one plane at a time
   is padded into ``buf`` (hp * wp floats, the caller's; NULL when nothing is padded), which stays in the cache:
   no padded copy of the whole input. The argmax is row * wp + col in the padded plane */
void convnp_max_pool(const float *x, long planes, long h, long w, long top, long left, long hp, long wp, long k,
                     long sh, long sw, long oh, long ow, float *buf, float *y, int *arg)
{
    if (top == 0 && left == 0 && hp == h && wp == w) {
        pool_dispatch(x, planes, h, w, k, sh, sw, oh, ow, y, arg);
        return;
    }
    for (long i = 0; i < hp * wp; i++)
        buf[i] = -INFINITY;
    for (long p = 0; p < planes; p++) {
        for (long r = 0; r < h; r++)
            memcpy(buf + (top + r) * wp + left, x + (p * h + r) * w, w * sizeof(float));
        pool_dispatch(buf, 1, hp, wp, k, sh, sw, oh, ow, y + p * oh * ow, arg + p * oh * ow);
    }
}

void convnp_max_pool_backward(const float *dy, const int *arg, long planes, long outputs, long plane, float *dx)
{
    for (long p = 0; p < planes; p++) {
        float *dxp = dx + p * plane;
        const float *dyp = dy + p * outputs;
        const int *ap = arg + p * outputs;
        memset(dxp, 0, plane * sizeof(float));
        for (long i = 0; i < outputs; i++)
            if (ap[i] >= 0)
                dxp[ap[i]] += dyp[i];
    }
}

/* samples n0..n1-1: y2 (o_n, n_n, oh, wg) -> out (n_n, o_n, oh, ow) */
void convnp_gemm_to_nchw(const float *y2, const float *bias, long n_n, long n0, long n1, long o_n, long oh, long ow,
                         long wg, float *out)
{
    for (long n = n0; n < n1; n++)
        for (long o = 0; o < o_n; o++) {
            const float b = bias ? bias[o] : 0.0f;
            const float *src = y2 + (o * n_n + n) * oh * wg;
            float *dst = out + (n * o_n + o) * oh * ow;
            for (long r = 0; r < oh; r++)
                for (long q = 0; q < ow; q++)
                    dst[r * ow + q] = src[r * wg + q] + b;
        }
}

/* filters o0..o1-1: dy (n_n, o_n, oh, ow) -> out (o_n, n_n, oh, wg), zeros at q >= ow */
void convnp_nchw_to_gemm(const float *dy, long n_n, long o_n, long o0, long o1, long oh, long ow, long wg, float *out)
{
    for (long o = o0; o < o1; o++)
        for (long n = 0; n < n_n; n++) {
            const float *src = dy + (n * o_n + o) * oh * ow;
            float *dst = out + (o * n_n + n) * oh * wg;
            for (long r = 0; r < oh; r++) {
                memcpy(dst + r * wg, src + r * ow, ow * sizeof(float));
                for (long q = ow; q < wg; q++)
                    dst[r * wg + q] = 0.0f;
            }
        }
}

/* channels c0..c1-1: col (c_n, kh, kw, n_n, lw) added into out (n_n, c_n, plane). Loop order (c, i, j, n): col is
 * read front to back, and two passes over one plane (kernel offsets one element apart) are n_n planes apart
 * (offset-by-offset passes over ONE small plane made each load wait for the previous pass's stores: 3-4x slower) */
void convnp_col2im_wide(const float *col, long n_n, long c_n, long c0, long c1, long kh, long kw, long dh, long dw,
                        long wp, long lw, long plane, float *out)
{
    for (long c = c0; c < c1; c++)
        for (long i = 0; i < kh; i++)
            for (long j = 0; j < kw; j++) {
                const long off = i * dh * wp + j * dw;
                for (long n = 0; n < n_n; n++) {
                    const float *src = col + (((c * kh + i) * kw + j) * n_n + n) * lw;
                    float *dst = out + (n * c_n + c) * plane + off;
                    for (long p = 0; p < lw; p++)
                        dst[p] += src[p];
                }
            }
}

/* planes t0..t1-1 of (n, c): col (n_n*c_n, kh, kw, oh, ow) added into out (n_n*c_n, hp, wp) */
void convnp_col2im_nc(const float *col, long t0, long t1, long kh, long kw, long sh, long sw, long dh, long dw,
                      long oh, long ow, long hp, long wp, float *out)
{
    for (long t = t0; t < t1; t++)
        for (long i = 0; i < kh; i++)
            for (long j = 0; j < kw; j++) {
                const float *src = col + ((t * kh + i) * kw + j) * oh * ow;
                float *plane = out + t * hp * wp + i * dh * wp + j * dw;
                for (long r = 0; r < oh; r++)
                    for (long q = 0; q < ow; q++)
                        plane[r * sh * wp + q * sw] += src[r * ow + q];
            }
}

/* Batch norm per channel (functional/normalization.py has the formulas), channels c0..c1-1 of x (n_n, c_n, l):
 * sums in double, so the statistics are at least as exact as NumPy's float32 reductions.
 *   train forward: mean = sum(x)/m, xc = x - mean (stored), var = sum(xc^2)/m, y = xc*scale + bias with
 *                  scale = weight/sqrt(var + eps) (weight 1 when NULL); writes mean[c], var[c] (biased), inv_std[c]
 *   eval forward:  y = (x - mean)*scale + bias from the given mean, var (no xc stored)
 *   train backward: dbias = sum(dy), dweight = sum(dy*xc)*inv_std, dx = g*(dy - dbias/m) - xc*g*inv_std*dweight/m,
 *                  g = weight*inv_std */
void convnp_bn_forward_train(const float *x, long n_n, long c_n, long l, long c0, long c1, const float *weight,
                             const float *bias, float eps, float *xc, float *y, float *mean, float *var,
                             float *inv_std)
{
    const double m = (double)n_n * l;
    for (long c = c0; c < c1; c++) {
        double s = 0.0;
        for (long n = 0; n < n_n; n++)
            s += row_sum(x + (n * c_n + c) * l, l);
        const float mu = (float)(s / m);
        double ss = 0.0;
        for (long n = 0; n < n_n; n++) {
            const float *xr = x + (n * c_n + c) * l;
            float *xcr = xc + (n * c_n + c) * l;
            for (long i = 0; i < l; i++)
                xcr[i] = xr[i] - mu;
            ss += row_dot(xcr, xcr, l);
        }
        const float v = (float)(ss / m), inv = 1.0f / sqrtf(v + eps);
        const float scale = weight ? weight[c] * inv : inv, shift = bias ? bias[c] : 0.0f;
        for (long n = 0; n < n_n; n++) {
            const float *xcr = xc + (n * c_n + c) * l;
            float *yr = y + (n * c_n + c) * l;
            for (long i = 0; i < l; i++)
                yr[i] = xcr[i] * scale + shift;
        }
        mean[c] = mu;
        var[c] = v;
        inv_std[c] = inv;
    }
}

/* y = x * scale[c] + shift[c] (+ add, the same shape as x) (then max(., 0), NaN kept: v < 0 is false for NaN) */
void convnp_bn_forward_eval(const float *x, long n_n, long c_n, long l, long c0, long c1, const float *scale,
                            const float *shift, const float *add, int relu, float *y)
{
    for (long c = c0; c < c1; c++)
        for (long n = 0; n < n_n; n++) {
            const long at = (n * c_n + c) * l;
            const float *xr = x + at, *ar = add ? add + at : 0;
            float *yr = y + at;
            const float a = scale[c], b = shift[c];
            for (long i = 0; i < l; i++) { /* (the compiler unswitches the loop on ar and relu) */
                float v = xr[i] * a + b;
                if (ar)
                    v += ar[i];
                yr[i] = relu_if(relu, v);
            }
        }
}

void convnp_bn_backward_train(const float *dy, const float *xc, long n_n, long c_n, long l, long c0, long c1,
                              const float *weight, const float *inv_std, float *dx, float *dweight, float *dbias)
{
    const double m = (double)n_n * l;
    for (long c = c0; c < c1; c++) {
        double sd = 0.0, sdx = 0.0;
        for (long n = 0; n < n_n; n++) {
            const float *dr = dy + (n * c_n + c) * l, *xr = xc + (n * c_n + c) * l;
            sd += row_sum(dr, l);
            sdx += row_dot(dr, xr, l);
        }
        const float inv = inv_std[c], g = weight ? weight[c] * inv : inv;
        const float db = (float)sd, dw = (float)sdx * inv;
        const float a = g, b = (float)(g * sd / m), k = (float)(g * inv * dw / m);
        for (long n = 0; n < n_n; n++) {
            const float *dr = dy + (n * c_n + c) * l, *xr = xc + (n * c_n + c) * l;
            float *o = dx + (n * c_n + c) * l;
            for (long i = 0; i < l; i++)
                o[i] = a * dr[i] - b - k * xr[i];
        }
        dweight[c] = dw;
        dbias[c] = db;
    }
}
