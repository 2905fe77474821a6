/* convnp.accel: the phases of a strided convolution (see convnp/accel/direct.py, conv2d_strided).
 *
 * A stride-(sh, sw) convolution reads the padded input xpad only at rows sh*r + i and columns sw*q + j. Split
 * the taps by (a, b) = (i mod sh, j mod sw): phase (a, b) sees xpad[a::sh, b::sw] and the taps w[a::sh, b::sw],
 * and is a plain stride-1 convolution of those. y is the sum of the phases' stride-1 convolutions; dW of the
 * phase's taps and dx at the phase's positions come from the stride-1 backward of that phase alone.
 *
 * gather:  out[k, r, q] = x[k, sh*r + row0, sw*q + col0] for r < rows, q < cols, where that is inside x (with
 *          row0 = a - top, col0 = b - left: the zero padding is made here), 0 everywhere else in the
 *          (hp1, wp) plane of out.
 * scatter: x[k, sh*r + row0, sw*q + col0] = src[k, r, q] for every such position inside x (the gradient of a
 *          phase written back to the positions it came from; the phases cover disjoint positions).
 */
#include <string.h>

static inline long first_inside(long start, long step) /* smallest r >= 0 with step*r + start >= 0 */
{
    return start >= 0 ? 0 : (-start + step - 1) / step;
}

static inline long end_inside(long start, long step, long size, long limit) /* r < this: step*r + start < size */
{
    if (start >= size)
        return 0;
    long end = (size - start + step - 1) / step;
    return end < limit ? end : limit;
}

void convnp_phase_gather(const float *x, long planes, long h, long w, long sh, long sw, long row0, long col0,
                         long rows, long cols, long hp1, long wp, float *out)
{
    const long r_lo = first_inside(row0, sh), r_hi = end_inside(row0, sh, h, rows);
    const long q_lo = first_inside(col0, sw), q_hi = end_inside(col0, sw, w, cols);
    for (long k = 0; k < planes; k++) {
        const float *xk = x + k * h * w;
        float *ok = out + k * hp1 * wp;
        for (long r = 0; r < hp1; r++) {
            float *row = ok + r * wp;
            if (r < r_lo || r >= r_hi || q_lo >= q_hi) {
                memset(row, 0, wp * sizeof(float));
                continue;
            }
            const float *src = xk + (sh * r + row0) * w + col0;
            memset(row, 0, q_lo * sizeof(float));
            if (sw == 2) /* the common stride, with the step known to the compiler */
                for (long q = q_lo; q < q_hi; q++)
                    row[q] = src[2 * q];
            else
                for (long q = q_lo; q < q_hi; q++)
                    row[q] = src[sw * q];
            memset(row + q_hi, 0, (wp - q_hi) * sizeof(float));
        }
    }
}

void convnp_phase_scatter(const float *src, long planes, long rows, long cols, long sh, long sw, long row0,
                          long col0, long h, long w, float *x)
{
    const long r_lo = first_inside(row0, sh), r_hi = end_inside(row0, sh, h, rows);
    const long q_lo = first_inside(col0, sw), q_hi = end_inside(col0, sw, w, cols);
    for (long k = 0; k < planes; k++) {
        const float *sk = src + k * rows * cols;
        float *xk = x + k * h * w;
        for (long r = r_lo; r < r_hi; r++) {
            const float *s = sk + r * cols;
            float *dst = xk + (sh * r + row0) * w + col0;
            for (long q = q_lo; q < q_hi; q++)
                dst[sw * q] = s[q];
        }
    }
}
