/* convnp.accel: zero padding of image planes, the copy in front of every direct convolution.
 *
 * out[k, t + r, l + q] = x[k, r, q] (times mask[k, r, q] > 0 when a mask is given: a ReLU's backward fused
 * into the copy), zeros elsewhere: t rows on top, l columns on the left, and whatever rows (hp1 - t - h) and
 * columns (wp - l - w) remain at the bottom and on the right. NumPy needs one small copy per row for this,
 * from a single thread; here it is one pass, split over the batch by the caller.
 *
 * Rows of at most 16 floats (7x7 and 14x14 maps padded by one) take two AVX-512 instructions each: a masked
 * expanding load puts the w values at lanes l..l+w-1 with zeros around them, a masked store writes the wp
 * floats of the padded row. The general path spends three library calls (memset, memcpy, memset) on each row,
 * most of the time on such short rows: (6400, 7, 7) planes 0.27 ms against 0.08 ms here.
 */
#include <string.h>

#include "isa.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
/* planes whose padded rows fit one vector (wp <= 16) */
static void pad_short_rows(const float *x, const float *mask, long planes, long h, long w, long t, long l, long hp1,
                           long wp, float *out)
{
    const __mmask16 row_mask = (__mmask16)((1u << wp) - 1), data_mask = (__mmask16)(((1u << w) - 1) << l);
    const __m512 zero = _mm512_setzero_ps();
    for (long k = 0; k < planes; k++) {
        const float *xk = x + k * h * w;
        const float *mk = mask ? mask + k * h * w : 0;
        float *ok = out + k * hp1 * wp;
        for (long r = 0; r < t; r++)
            _mm512_mask_storeu_ps(ok + r * wp, row_mask, zero);
        for (long r = 0; r < h; r++) {
            __m512 v = _mm512_maskz_expandloadu_ps(data_mask, xk + r * w);
            if (mk) { /* where mask > 0 (NaN in the mask counts as not > 0), else +0 */
                const __m512 m = _mm512_maskz_expandloadu_ps(data_mask, mk + r * w);
                v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(m, zero, _CMP_GT_OQ), v);
            }
            _mm512_mask_storeu_ps(ok + (t + r) * wp, row_mask, v);
        }
        for (long r = t + h; r < hp1; r++)
            _mm512_mask_storeu_ps(ok + r * wp, row_mask, zero);
    }
}
#endif

void convnp_pad_planes(const float *x, const float *mask, long planes, long h, long w, long t, long l, long hp1,
                       long wp, float *out)
{
#if defined(__AVX512F__)
    if (wp <= 16) {
        pad_short_rows(x, mask, planes, h, w, t, l, hp1, wp, out);
        return;
    }
#endif
    const long r_pad = wp - l - w;
    for (long k = 0; k < planes; k++) {
        const float *xk = x + k * h * w;
        const float *mk = mask ? mask + k * h * w : 0;
        float *ok = out + k * hp1 * wp;
        memset(ok, 0, t * wp * sizeof(float));
        for (long r = 0; r < h; r++) {
            float *row = ok + (t + r) * wp;
            memset(row, 0, l * sizeof(float));
            if (mk) {
                for (long q = 0; q < w; q++) { /* both loads unconditional: vectorizes */
                    const float v = xk[r * w + q];
                    row[l + q] = where_positive(mk[r * w + q], v);
                }
            } else {
                memcpy(row + l, xk + r * w, w * sizeof(float));
            }
            memset(row + l + w, 0, r_pad * sizeof(float));
        }
        memset(ok + (t + h) * wp, 0, (hp1 - t - h) * wp * sizeof(float));
    }
}
