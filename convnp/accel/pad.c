/* convnp.accel: zero padding of image planes, the copy in front of every direct convolution.
 *
 * out[k, t + r, l + q] = x[k, r, q] (times mask[k, r, q] > 0 when a mask is given: a ReLU's backward fused
 * into the copy), zeros elsewhere: t rows on top, l columns on the left, and whatever rows (hp1 - t - h) and
 * columns (wp - l - w) remain at the bottom and on the right. NumPy needs one small copy per row for this,
 * from a single thread; here it is one pass, split over the batch by the caller.
 */
#include <string.h>

#include "isa.h"

void convnp_pad_planes(const float *x, const float *mask, long planes, long h, long w, long t, long l, long hp1,
                       long wp, float *out)
{
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
