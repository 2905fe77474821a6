/* convnp.accel: im2col and col2im for strided (and dilated) convolutions, the layout convnp's GEMM path uses:
 *
 *   col[c, i, j, n, r, q] = x[n, c, r*sh + i*dh, q*sw + j*dw]      (x: the padded input, planes hp x wp)
 *
 * col2im adds the patches back (overlapping windows sum). Channels c0..c1-1 only, so that threads can split
 * the channels (each touches its own rows of col and its own planes of x). NumPy's strided slice copies ran
 * at ~2.6 GB/s on these shapes (a run of OW values `sw` apart per row); stride 1 and 2 get loops the compiler
 * vectorizes.
 */
#define WALK(BODY)                                                                                                 \
    for (long c = c0; c < c1; c++)                                                                                 \
        for (long i = 0; i < kh; i++)                                                                              \
            for (long j = 0; j < kw; j++)                                                                          \
                for (long n = 0; n < n_n; n++) {                                                                   \
                    float *plane = x + (n * c_n + c) * hp * wp + i * dh * wp + j * dw;                             \
                    float *patch = col + (((c * kh + i) * kw + j) * n_n + n) * oh * ow;                            \
                    for (long r = 0; r < oh; r++) {                                                                \
                        float *row = plane + r * sh * wp, *part = patch + r * ow;                                  \
                        if (sw == 1)                                                                               \
                            for (long q = 0; q < ow; q++) {                                                        \
                                BODY(q);                                                                           \
                            }                                                                                      \
                        else if (sw == 2)                                                                          \
                            for (long q = 0; q < ow; q++) {                                                        \
                                BODY(2 * q);                                                                       \
                            }                                                                                      \
                        else                                                                                       \
                            for (long q = 0; q < ow; q++) {                                                        \
                                BODY(q * sw);                                                                      \
                            }                                                                                      \
                    }                                                                                              \
                }

#define GATHER(at) part[q] = row[at]
#define SCATTER_ADD(at) row[at] += part[q]

void convnp_im2col(float *x, long n_n, long c_n, long c0, long c1, long hp, long wp, long kh, long kw, long sh,
                   long sw, long dh, long dw, long oh, long ow, float *col)
{
    WALK(GATHER)
}

void convnp_col2im(float *col, long n_n, long c_n, long c0, long c1, long hp, long wp, long kh, long kw, long sh,
                   long sw, long dh, long dw, long oh, long ow, float *x)
{
    WALK(SCATTER_ADD)
}
