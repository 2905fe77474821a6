/* convnp.accel: one Adam / AdamW step in one pass (optional; convnp/optim/adam.py is the reference).
 *
 * PyTorch's rule, as in adam.py, for n float32 values:
 *   g = g + weight_decay * p                 (Adam: coupled L2)   or   p = p * (1 - lr * weight_decay)  (AdamW)
 *   m = m + (1 - beta1) * (g - m);  v = beta2 * v + (1 - beta2) * g * g
 *   p = p - step_size * m / (sqrt(v) / bias2_sqrt + eps),  step_size = lr / (1 - beta1^t), bias2_sqrt = sqrt(1 - beta2^t)
 *
 * Subnormal numbers are flushed to zero while it runs (the FTZ and DAZ bits of MXCSR, restored on return):
 * the moments of rarely used weights decay into the subnormal range after some hundred steps, where every
 * operation on them is about 100x slower; values below 1.2e-38 change no weight in float32 anyway.
 */
#include <math.h>
#include <immintrin.h>

void convnp_adam_f32(float *p, const float *g, float *m, float *v, long n, float lr, float beta1, float beta2,
                     float eps, float weight_decay, int decoupled, float step_size, float bias2_sqrt)
{
    const unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);  /* flush-to-zero | denormals-are-zero */
    const float shrink = decoupled ? 1.0f - lr * weight_decay : 1.0f;
    const float l2 = decoupled ? 0.0f : weight_decay;
    for (long i = 0; i < n; i++) {
        const float gi = g[i] + l2 * p[i];
        const float mi = m[i] + (1.0f - beta1) * (gi - m[i]);
        const float vi = beta2 * v[i] + (1.0f - beta2) * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * shrink - step_size * (mi / (sqrtf(vi) / bias2_sqrt + eps));
    }
    _mm_setcsr(csr);
}
