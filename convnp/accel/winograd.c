/* convnp.accel: the transforms of Winograd's F(2x2, 3x3) convolution (Lavin and Gray, 2015).
 *
 * A 3x3 stride-1 convolution computes each 2x2 block ("tile") of outputs from the 4x4 block of inputs under it:
 *
 *   Y = A^T [ (G g G^T) . (B^T d B) ] A       (. : elementwise, 16 products instead of 36)
 *
 *        | 1  0 -1  0 |            | 1    0    0  |
 *  B^T = | 0  1  1  0 |        G = | 1/2  1/2  1/2 |      A^T = | 1  1  1  0 |
 *        | 0 -1  1  0 |            | 1/2 -1/2  1/2 |            | 0  1 -1 -1 |
 *        | 0  1  0 -1 |            | 0    0    1  |
 *
 * Over channels the elementwise products become 16 matrix products, one per position k = (xi, nu) of the 4x4:
 * M[k] (O, P) = U[k] (O, C) @ V[k] (C, P), for P tiles. These kernels make V from the input (zero padding
 * included) and turn M into the output; NumPy's BLAS multiplies and makes U (convnp.functional.conv_winograd).
 *
 *   input    v[k][c][p] = (B^T d B)[k], d the 4x4 input block of tile p = (n, ti, tj): rows 2*ti - top + 0..3,
 *            columns 2*tj - left + 0..3 (zero outside the image)
 *   output   y[n][o][2*ti + a][2*tj + b] = (A^T M A)[a][b] + bias[o], kept where inside (oh, ow); a fused
 *            ReLU stores max(y, 0) with NaN kept (y < 0 ? 0 : y)
 *
 * Both are written as row passes over whole image rows (the compiler vectorizes them; no intrinsics): the
 * same code for every variant of isa.h.
 */
#include <string.h>

#include "isa.h"

/* rows first .. first+count-1 of a plane (h, w) into count rows of wr floats, each shifted right by ``left``,
   zero where the plane has no row or column (the zero padding of both input transforms) */
static inline void padded_rows(const float *plane, long h, long w, long left, long first, int count, long wr,
                               float *rows)
{
    const long copy = (w + left < wr ? w + left : wr) - left; /* the plane's columns inside a row */
    for (int r = 0; r < count; r++) {
        const long src = first + r;
        memset(rows + r * wr, 0, wr * sizeof(float));
        if (src >= 0 && src < h && copy > 0)
            memcpy(rows + r * wr + left, plane + src * w, copy * sizeof(float));
    }
}

/* channels c0..c1-1 of x (n_n, c_n, h, w) -> v (16, c_n, n_n*th*tw) */
void convnp_winograd_input(const float *x, long n_n, long c_n, long h, long w, long top, long left, long th,
                           long tw, long c0, long c1, float *v)
{
    const long wr = 2 * tw + 2, tiles = n_n * th * tw; /* a padded row covers every tile's 4 columns */
    for (long c = c0; c < c1; c++)
        for (long n = 0; n < n_n; n++) {
            const float *plane = x + (n * c_n + c) * h * w;
            for (long ti = 0; ti < th; ti++) {
                float d[4][wr], t[4][wr];
                padded_rows(plane, h, w, left, 2 * ti - top, 4, wr, &d[0][0]); /* this tile row's 4 input rows */
                for (long q = 0; q < wr; q++) { /* B^T d: along the rows */
                    t[0][q] = d[0][q] - d[2][q];
                    t[1][q] = d[1][q] + d[2][q];
                    t[2][q] = d[2][q] - d[1][q];
                    t[3][q] = d[1][q] - d[3][q];
                }
                const long p0 = (n * th + ti) * tw;
                for (int i = 0; i < 4; i++) { /* (B^T d) B: along the columns, one tile every 2 columns */
                    float *v0 = v + ((i * 4 + 0) * c_n + c) * tiles + p0, *v1 = v + ((i * 4 + 1) * c_n + c) * tiles + p0;
                    float *v2 = v + ((i * 4 + 2) * c_n + c) * tiles + p0, *v3 = v + ((i * 4 + 3) * c_n + c) * tiles + p0;
                    const float *s = t[i];
                    for (long j = 0; j < tw; j++) {
                        v0[j] = s[2 * j] - s[2 * j + 2];
                        v1[j] = s[2 * j + 1] + s[2 * j + 2];
                        v2[j] = s[2 * j + 2] - s[2 * j + 1];
                        v3[j] = s[2 * j + 1] - s[2 * j + 3];
                    }
                }
            }
        }
}

/* filters o0..o1-1: m (16, o_n, n_n*th*tw) -> y (n_n, o_n, oh, ow); bias may be NULL */
void convnp_winograd_output(const float *m, long n_n, long o_n, long th, long tw, long oh, long ow,
                            const float *bias, int relu, long o0, long o1, float *y)
{
    const long tiles = n_n * th * tw;
    float r0[2 * tw], r1[2 * tw];
    for (long o = o0; o < o1; o++) {
        const float b = bias ? bias[o] : 0.0f;
        for (long n = 0; n < n_n; n++)
            for (long ti = 0; ti < th; ti++) {
                const long p0 = (n * th + ti) * tw;
                const float *mk[16];
                for (int k = 0; k < 16; k++)
                    mk[k] = m + (k * o_n + o) * tiles + p0;
                for (long j = 0; j < tw; j++) {
                    float s0[4], s1[4];
                    for (int i = 0; i < 4; i++) { /* M A: along the columns */
                        s0[i] = mk[4 * i][j] + mk[4 * i + 1][j] + mk[4 * i + 2][j];
                        s1[i] = mk[4 * i + 1][j] - mk[4 * i + 2][j] - mk[4 * i + 3][j];
                    }
                    r0[2 * j] = s0[0] + s0[1] + s0[2]; /* A^T (M A): along the rows */
                    r0[2 * j + 1] = s1[0] + s1[1] + s1[2];
                    r1[2 * j] = s0[1] - s0[2] - s0[3];
                    r1[2 * j + 1] = s1[1] - s1[2] - s1[3];
                }
                for (int a = 0; a < 2 && 2 * ti + a < oh; a++) {
                    const float *src = a ? r1 : r0;
                    float *dst = y + ((n * o_n + o) * oh + 2 * ti + a) * ow;
                    for (long q = 0; q < ow; q++) {
                        const float value = src[q] + b;
                        dst[q] = relu_if(relu, value); /* NaN kept */
                    }
                }
            }
    }
}

/* F(4x4, 3x3): 4x4 output tiles from 6x6 input blocks, 36 products instead of 144 (4x fewer than direct, 1.78x
 * fewer than F(2x2, 3x3)); the points 0, 1, -1, 2, -2 and infinity of Lavin and Gray:
 *
 *        | 4  0 -5  0  1  0 |          | 1/4    0     0   |
 *        | 0 -4 -4  1  1  0 |          | -1/6 -1/6  -1/6  |          | 1  1  1  1  1  0 |
 *  B^T = | 0  4 -4 -1  1  0 |      G = | -1/6  1/6  -1/6  |    A^T = | 0  1 -1  2 -2  0 |
 *        | 0 -2 -1  2  1  0 |          | 1/24  1/12  1/6  |          | 0  1  1  4  4  0 |
 *        | 0  2 -1 -2  1  0 |          | 1/24 -1/12  1/6  |          | 0  1 -1  8 -8  1 |
 *        | 0  4  0 -5  0  1 |          | 0      0     1   |
 *
 * The same two passes as above with 6-row blocks, tiles every 4 rows and columns, M (36, O, P); A^T is
 * applied as (m1 + m2) + ... and (m1 - m2) + 2 (m3 - m4) ..., shared sums, no products with its zeros. */

/* t = B^T d for one 6-vector (s: stride between its elements), written out (no products with B^T's zeros) */
#define CONVNP_BT6(t, d, s)                                                                                  \
    do {                                                                                                     \
        t##0 = 4.0f * d[0] - 5.0f * d[2 * (s)] + d[4 * (s)];                                                 \
        t##1 = -4.0f * d[s] - 4.0f * d[2 * (s)] + d[3 * (s)] + d[4 * (s)];                                   \
        t##2 = 4.0f * d[s] - 4.0f * d[2 * (s)] - d[3 * (s)] + d[4 * (s)];                                    \
        t##3 = -2.0f * d[s] - d[2 * (s)] + 2.0f * d[3 * (s)] + d[4 * (s)];                                   \
        t##4 = 2.0f * d[s] - d[2 * (s)] - 2.0f * d[3 * (s)] + d[4 * (s)];                                    \
        t##5 = 4.0f * d[s] - 5.0f * d[3 * (s)] + d[5 * (s)];                                                 \
    } while (0)

/* channels c0..c1-1 of x (n_n, c_n, h, w) -> v (36, c_n, n_n*th*tw) */
void convnp_winograd4_input(const float *x, long n_n, long c_n, long h, long w, long top, long left, long th,
                            long tw, long c0, long c1, float *v)
{
    const long wr = 4 * tw + 2, tiles = n_n * th * tw;
    for (long c = c0; c < c1; c++)
        for (long n = 0; n < n_n; n++) {
            const float *plane = x + (n * c_n + c) * h * w;
            for (long ti = 0; ti < th; ti++) {
                float d[6][wr], t[6][wr];
                padded_rows(plane, h, w, left, 4 * ti - top, 6, wr, &d[0][0]); /* this tile row's 6 input rows */
                for (long q = 0; q < wr; q++) { /* B^T d: along the rows */
                    float t0, t1, t2, t3, t4, t5;
                    const float *col = &d[0][q];
                    CONVNP_BT6(t, col, wr);
                    t[0][q] = t0, t[1][q] = t1, t[2][q] = t2, t[3][q] = t3, t[4][q] = t4, t[5][q] = t5;
                }
                const long p0 = (n * th + ti) * tw;
                for (int i = 0; i < 6; i++) { /* (B^T d) B: along the columns, one tile every 4 columns */
                    float *vk[6];
                    for (int k = 0; k < 6; k++)
                        vk[k] = v + ((i * 6 + k) * c_n + c) * tiles + p0;
                    for (long j = 0; j < tw; j++) {
                        float t0, t1, t2, t3, t4, t5;
                        const float *s = &t[i][4 * j];
                        CONVNP_BT6(t, s, 1);
                        vk[0][j] = t0, vk[1][j] = t1, vk[2][j] = t2, vk[3][j] = t3, vk[4][j] = t4, vk[5][j] = t5;
                    }
                }
            }
        }
}

/* r = A^T e for one 6-vector e (s: the stride between its elements), as shared sums and differences */
static inline void a_t6(const float *e, long s, float r[4])
{
    const float a1 = e[s] + e[2 * s], a2 = e[s] - e[2 * s], a3 = e[3 * s] + e[4 * s], a4 = e[3 * s] - e[4 * s];
    r[0] = e[0] + a1 + a3;
    r[1] = a2 + 2.0f * a4;
    r[2] = a1 + 4.0f * a3;
    r[3] = a2 + 8.0f * a4 + e[5 * s];
}

/* filters o0..o1-1: m (36, o_n, n_n*th*tw) -> y (n_n, o_n, oh, ow); bias may be NULL */
void convnp_winograd4_output(const float *m, long n_n, long o_n, long th, long tw, long oh, long ow,
                             const float *bias, int relu, long o0, long o1, float *y)
{
    const long tiles = n_n * th * tw;
    float rows[4][4 * tw];
    for (long o = o0; o < o1; o++) {
        const float b = bias ? bias[o] : 0.0f;
        for (long n = 0; n < n_n; n++)
            for (long ti = 0; ti < th; ti++) {
                const long p0 = (n * th + ti) * tw;
                const float *mk[36];
                for (int k = 0; k < 36; k++)
                    mk[k] = m + (k * o_n + o) * tiles + p0;
                for (long j = 0; j < tw; j++) {
                    float s[6][4], e[6], r[4];
                    for (int i = 0; i < 6; i++) { /* M A: along the columns of row i */
                        for (int k = 0; k < 6; k++)
                            e[k] = mk[6 * i + k][j];
                        a_t6(e, 1, s[i]);
                    }
                    for (int q = 0; q < 4; q++) { /* A^T (M A): along the rows */
                        a_t6(&s[0][q], 4, r);
                        for (int a = 0; a < 4; a++)
                            rows[a][4 * j + q] = r[a];
                    }
                }
                for (int a = 0; a < 4 && 4 * ti + a < oh; a++) {
                    float *dst = y + ((n * o_n + o) * oh + 4 * ti + a) * ow;
                    for (long q = 0; q < ow; q++) {
                        const float value = rows[a][q] + b;
                        dst[q] = relu_if(relu, value); /* NaN kept */
                    }
                }
            }
    }
}
