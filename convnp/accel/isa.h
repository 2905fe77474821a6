/* convnp.accel: register blocking per instruction set, chosen at compile time.
 *
 * The same C sources are built once per variant (convnp.utils.build: AVX-512 F/BW/VL/DQ flags for "avx512",
 * AVX2 + FMA flags for "avx2", the compiler's default target for "generic", e.g. SSE2 or NEON). Each block of
 * accumulators must fit the register file, or the compiler spills it to memory on every update:
 *
 *   variant  vector registers   direct_conv.c        direct_cv.c              direct_dw.c
 *                               filters x positions  filter vectors x pos.    filters x taps
 *   avx512   32 x 16 floats     8 x 48 = 24 regs     2 x 14 = 28 (dW 2 x 9)   4 x 6 = 24
 *                                                    (16 filters: 1 x 28)
 *   avx2     16 x 8 floats      4 x 24 = 12 regs     2 x 6 = 12 (dW 2 x 6)    2 x 6 = 12
 *   generic  16 x 4 floats      4 x 8  =  8 regs     2 x 6 = 12 (dW 2 x 6)    2 x 6 = 12
 *
 * Vectors are the register's own width (VL floats): a wider GCC vector type than the CPU has is split
 * into pieces through memory, which made an early AVX2 build 5-7x slower than NumPy. The data layouts do
 * not depend on the variant (filters packed by 8, dW runs rounded to 16 floats), so the Python side is the
 * same for all three.
 */
#ifndef CONVNP_ISA_H
#define CONVNP_ISA_H

#if defined(__AVX512F__) /* 32 registers of 16 floats */
#define CONVNP_VARIANT "avx512"
#define VL 16                  /* floats in a vector register */
#define CONV_FILTERS_IN_REGS 8 /* direct_conv.c: filters of a block kept in registers */
#define CONV_POSITIONS 48      /* direct_conv.c: positions of a block */
#define CV_VECTORS 2           /* direct_cv.c: filter vectors per block */
#define CV_POSITIONS 14        /* direct_cv.c: output positions per block */
#define CV_DW_TAPS 9           /* direct_cv.c: taps per dW block */
#define DW_FILTERS 4           /* direct_dw.c: filters per dW tile */
#define DW_TAPS 6              /* direct_dw.c: taps per dW tile */
#elif defined(__AVX2__) /* 16 registers of 8 floats */
#define CONVNP_VARIANT "avx2"
#define VL 8
#define CONV_FILTERS_IN_REGS 4
#define CONV_POSITIONS 24
#define CV_VECTORS 2
#define CV_POSITIONS 6
#define CV_DW_TAPS 6
#define DW_FILTERS 2
#define DW_TAPS 6
#else /* the compiler's default target: 16 registers of 4 floats (SSE2; NEON has 32) */
#define CONVNP_VARIANT "generic"
#define VL 4
#define CONV_FILTERS_IN_REGS 4
#define CONV_POSITIONS 8
#define CV_VECTORS 2
#define CV_POSITIONS 6
#define CV_DW_TAPS 6
#define DW_FILTERS 2
#define DW_TAPS 6
#endif

/* Selects on the bits, never a branch: a scalar loop (a row shorter than a vector, a transposing store) compiled
 * ``keep > 0 ? v : 0`` into a jump, and with ReLU's random signs half of them were mispredicted (a 7x7 map's masked
 * padding ran 4x slower than on regular test data). Both vectorize in long loops as the plain selects did. */

/* value where keep > 0, else +0 (also when value is NaN): a ReLU's backward */
static inline float where_positive(float keep, float value)
{
    unsigned int bits;
    __builtin_memcpy(&bits, &value, sizeof bits);
    bits &= -(unsigned int)(keep > 0.0f);
    __builtin_memcpy(&value, &bits, sizeof bits);
    return value;
}

/* max(value, 0) with NaN kept (a ReLU that lets NaN through), or value when relu is 0 */
static inline float relu_if(int relu, float value)
{
    unsigned int bits;
    __builtin_memcpy(&bits, &value, sizeof bits);
    bits &= -(unsigned int)!(relu && value < 0.0f);
    __builtin_memcpy(&value, &bits, sizeof bits);
    return value;
}

/* one vector register of floats (GCC/Clang vector extensions), and its unaligned, aliasing twin */
typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4), may_alias));

/* the sum of a vector's lanes, halves added pairwise (the same order on every run) */
static inline float vf_sum(vf v)
{
    float t[VL];
    __builtin_memcpy(t, &v, sizeof t);
    for (int w = VL / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            t[l] += t[l + w];
    return t[0];
}

#endif
