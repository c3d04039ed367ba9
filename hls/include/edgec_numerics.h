// edgec_numerics.h -- the integer primitives of edgec, for Vitis HLS and for C simulation with g++.
//
// This header mirrors edgec/numerics/fixed.py and edgec/numerics/lut.py line by line. The Python
// functions are the normative definition; every function here must return, for every input inside
// its documented domain, exactly the int64 that the NumPy version returns (tests/test_hls_numerics.py
// checks this bit for bit on edge cases and random data).
//
// Style rules (synthesizable C++14):
//   * header-only, no dynamic memory, no containers, no float or double anywhere;
//   * fixed trip counts on every loop, so HLS can fully unroll or pipeline them;
//   * arithmetic in plain int64_t, which Vitis HLS maps to ap_int<64> with two's-complement wrap.
//     ap_fixed is deliberately NOT used for arithmetic: its defaults (AP_TRN = truncate towards
//     -inf, AP_WRAP = wrap on overflow) are neither round-half-to-even nor saturation, so every
//     rounding and clamp is written out explicitly below.
//
// Two's complement and undefined behaviour. NumPy int64 arithmetic wraps modulo 2^64 and >> on a
// negative value is arithmetic (floor). In C++14, signed overflow and left-shifting a negative value
// are undefined, and >> of a negative value is implementation-defined. Therefore:
//   * additions and multiplications that may wrap, and left shifts, go through uint64_t (defined to
//     wrap) and are converted back (implementation-defined before C++20, two's complement on
//     g++, clang and Vitis HLS; a static_assert below checks the compiler agrees);
//   * right shifts of negative int64_t rely on the arithmetic shift that g++, clang and Vitis HLS
//     all implement (also checked by a static_assert).
// Inside the documented domains nothing wraps anyway; the wrap helpers only make the code free of
// undefined behaviour so an optimizing compiler cannot "prove" a different result.

#ifndef EDGEC_NUMERICS_H_
#define EDGEC_NUMERICS_H_

#include <stdint.h>

#include "ap_int.h"

namespace edgec {

// The compiler must use two's complement conversions and arithmetic right shifts (true of g++,
// clang and Vitis HLS); NumPy's semantics are defined in those terms.
static_assert((-1 >> 1) == -1, "edgec_numerics.h needs an arithmetic right shift of negative ints");
static_assert(static_cast<int64_t>(UINT64_C(0xFFFFFFFFFFFFFFFF)) == -1,
              "edgec_numerics.h needs two's-complement unsigned-to-signed conversion");

// ---- Constants (edgec/numerics/fixed.py) -------------------------------------------------------

// Multipliers are normalised into [2^(MULT_BITS-1), 2^MULT_BITS): 15 bits.
static const int MULT_BITS = 15;
// requant() expects |x| < 2^47 so that x * m (|m| < 2^15) stays inside int64 / ap_int<64>.
static const int REQUANT_INPUT_BITS = 47;
// exp2_fixed() works in Q2.30: its polynomial and its result carry 30 fractional bits.
static const int EXP2_FRAC_BITS = 30;
// 2^x on [-1, 0] as a degree-5 polynomial, highest power first, Q30 integers. Same integers as
// EXP2_POLY_Q30 in fixed.py: p(0) = 2^30 and p(-1) = 2^29 exactly.
static const int EXP2_POLY_DEGREE = 5;
static const int64_t EXP2_POLY_Q30[EXP2_POLY_DEGREE + 1] = {
    1017670, 9893646, 59383922, 257894831, 744257797, 1073741824};

// reciprocal_fixed(): Q30 mantissa, RECIP_ITERATIONS Newton steps from 48/17 - 32/17 a. Same integers
// as RECIP_C0_Q30 / RECIP_C1_Q30 in fixed.py.
static const int RECIP_FRAC_BITS = 30;
static const int RECIP_ITERATIONS = 3;
static const int64_t RECIP_C0_Q30 = 3031741621LL;
static const int64_t RECIP_C1_Q30 = 2021161080LL;

// ---- Types -------------------------------------------------------------------------------------

// An int8 code (quantized activation or weight). ap_int<8> in HLS; int8_t converts implicitly.
typedef ap_int<8> code_t;
// Wide accumulators: int8 x int8 products summed exactly, and the 64-bit working width of requant.
typedef ap_int<32> acc32_t;
typedef ap_int<64> acc64_t;

// ---- Wrap-around helpers (NumPy int64 semantics without C++ undefined behaviour) ----------------

// a + b modulo 2^64, as NumPy's int64 addition.
inline int64_t wrap_add(int64_t a, int64_t b) {
#pragma HLS INLINE
    return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}

// a - b modulo 2^64.
inline int64_t wrap_sub(int64_t a, int64_t b) {
#pragma HLS INLINE
    return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}

// a * b modulo 2^64, as NumPy's int64 multiplication (the low 64 bits are sign-independent).
inline int64_t wrap_mul(int64_t a, int64_t b) {
#pragma HLS INLINE
    return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}

// a << s modulo 2^64 for s in [0, 63], as NumPy's int64 left shift (also for negative a).
inline int64_t wrap_shl(int64_t a, int s) {
#pragma HLS INLINE
    return static_cast<int64_t>(static_cast<uint64_t>(a) << s);
}

// ---- Primitives (edgec/numerics/fixed.py) -------------------------------------------------------

// x / 2^shift rounded half to even; shift in [0, 62].
//
// With q0 = x >> shift (floor) and half = 2^(shift-1): floor((x + half - 1 + (q0 & 1)) / 2^shift)
// rounds below-half down, above-half up, and an exact half up only when q0 is odd. For shift = 0
// both corrections vanish and x is returned unchanged. Like NumPy, x + half wraps modulo 2^64 when
// x is within 2^(shift-1) of INT64_MAX (outside any meaningful use; mirrored, not relied on).
inline int64_t rshift_round(int64_t x, int shift) {
#pragma HLS INLINE
    const int64_t nonzero = shift > 0 ? 1 : 0;
    const int64_t half = (static_cast<int64_t>(1) << shift) >> 1;
    const int64_t odd = (x >> shift) & nonzero;
    return wrap_add(wrap_sub(wrap_add(x, half), nonzero), odd) >> shift;
}

// Clamp to the signed range of `bits` bits: [-2^(bits-1), 2^(bits-1) - 1]; bits in [1, 64].
inline int64_t saturate(int64_t x, int bits) {
#pragma HLS INLINE
    // Built in uint64_t so that bits = 64 does not shift into the sign bit of a signed value.
    const int64_t hi = static_cast<int64_t>((static_cast<uint64_t>(1) << (bits - 1)) - 1);
    const int64_t lo = -hi - 1;
    return x < lo ? lo : (x > hi ? hi : x);
}

// The one requantization step: saturate(round_half_even(x * m / 2^shift), bits).
//
// Precondition (the Python version raises OverflowError instead): x * m fits in int64. requant's
// contract is |x| < 2^REQUANT_INPUT_BITS = 2^47 with a 15-bit multiplier (|m| < 2^15 -> |x*m| <
// 2^62); the selective scan uses a 30-bit per-element multiplier with |x| < 2^31 (|x*m| < 2^61).
// Both products fit in 64 bits, so HLS can size the multiplier from the operand widths.
// shift in [0, 62], bits in [1, 64].
inline int64_t requant(int64_t x, int64_t m, int shift, int bits) {
#pragma HLS INLINE
    return saturate(rshift_round(wrap_mul(x, m), shift), bits);
}

// Exact floor(sqrt(x)) for 0 <= x < 2^62.
//
// fixed.py gets the same result from a float64 sqrt plus two integer corrections; the hardware has
// no float, so this is the bitwise restoring square root: one result bit per iteration, from bit 30
// down to bit 0 of the root (the test bit walks 2^62, 2^60, ..., 2^0: 32 fixed iterations, only
// compare/subtract/shift). Invariant after the step with test bit 4^k: root = r * 4^k and
// rem = x - r^2 * 4^k, where r is the root decided so far; at the end (k = 0) root = floor(sqrt(x)).
inline int64_t isqrt(int64_t x) {
#pragma HLS INLINE
    uint64_t rem = static_cast<uint64_t>(x);
    uint64_t root = 0;
    uint64_t bit = static_cast<uint64_t>(1) << 62;
ISQRT_LOOP:
    for (int i = 0; i < 32; ++i) {
#pragma HLS UNROLL
        const uint64_t trial = root + bit;
        if (rem >= trial) {
            rem -= trial;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return static_cast<int64_t>(root);
}

// 2^(t / 2^frac_bits) for t <= 0, as a Q30 integer in [0, 2^30]; frac_bits in [0, 62].
//
// t = -(z + f) with integer z >= 0 and f in [0, 1): 2^t = 2^(-f) >> z, where 2^(-f) comes from
// EXP2_POLY_Q30 evaluated by Horner with rshift_round after each product (fixed iteration count).
// Domain: INT64_MIN < t <= 0 (for t = INT64_MIN, -t overflows and the Python version raises).
inline int64_t exp2_fixed(int64_t t, int frac_bits) {
#pragma HLS INLINE
    const int64_t z = wrap_sub(0, t) >> frac_bits;   // integer part of -t
    const int64_t frac = wrap_add(t, wrap_shl(z, frac_bits));  // in (-1, 0] * 2^frac_bits
    int64_t f30;
    if (frac_bits <= EXP2_FRAC_BITS) {
        f30 = wrap_shl(frac, EXP2_FRAC_BITS - frac_bits);  // exact: |frac| < 2^frac_bits
    } else {
        f30 = rshift_round(frac, frac_bits - EXP2_FRAC_BITS);
    }
    // Horner: |acc| <= 2^30 and |f30| <= 2^30, so each product is below 2^60.
    int64_t acc = EXP2_POLY_Q30[0];
EXP2_HORNER:
    for (int i = 1; i <= EXP2_POLY_DEGREE; ++i) {
#pragma HLS UNROLL
        acc = wrap_add(rshift_round(wrap_mul(acc, f30), EXP2_FRAC_BITS), EXP2_POLY_Q30[i]);
    }
    const int64_t one_q30 = static_cast<int64_t>(1) << EXP2_FRAC_BITS;
    acc = acc < one_q30 ? acc : one_q30;
    // Shifting by 62 already leaves 0 for any acc <= 2^30, so larger z are clamped to 62.
    return rshift_round(acc, z < 62 ? static_cast<int>(z) : 62);
}

// The bit length of a non-negative value (0 for 0), by a fixed 63-step scan.
inline int bit_length(int64_t x) {
#pragma HLS INLINE
    int b = 0;
BIT_LENGTH_LOOP:
    for (int i = 0; i < 63; ++i) {
#pragma HLS UNROLL
        if ((x >> i) != 0) b = i + 1;
    }
    return b;
}

// 1 / x for x in [1, 2^62): returns the mantissa y in [2^30, 2^31] and sets *shift so that
// 1/x ~= y * 2^-shift. x = a * 2^b with a in [1/2, 1) taken to 31 bits; y ~= 2^30 / a by
// RECIP_ITERATIONS Newton steps y += y (1 - a y), each product rounded by rshift_round (no division).
inline int64_t reciprocal_fixed(int64_t x, int* shift) {
#pragma HLS INLINE
    const int b = bit_length(x);
    const int64_t xn = b >= 31 ? (x >> (b - 31)) : (x << (31 - b));  // in [2^30, 2^31)
    int64_t y = RECIP_C0_Q30 - rshift_round(RECIP_C1_Q30 * xn, 31);
RECIP_NEWTON:
    for (int i = 0; i < RECIP_ITERATIONS; ++i) {
#pragma HLS UNROLL
        const int64_t e = (static_cast<int64_t>(1) << RECIP_FRAC_BITS) - rshift_round(xn * y, 31);
        y = y + rshift_round(y * e, RECIP_FRAC_BITS);
    }
    *shift = b + RECIP_FRAC_BITS;
    return y;
}

// round(2^(e / 2^frac_bits)) for any signed fixed-point exponent e, saturated to 2^cap_bits;
// frac_bits in [0, 62], cap_bits in [30, 62] (see the wrap note below for 62).
//
// With z = ceil(e / 2^frac_bits) and the fraction e - z * 2^frac_bits in (-1, 0]: the Q30 mantissa
// exp2_fixed(fraction) in (2^29, 2^30] is shifted left by z - 30, or right (rounding half to even) by
// 30 - z. As in NumPy, mant << up wraps when cap_bits = 62 and the mantissa is 2^30 (mirrored, not
// relied on: edgec uses cap_bits <= 59).
inline int64_t exp2_int(int64_t e, int frac_bits, int cap_bits) {
#pragma HLS INLINE
    const int64_t z = wrap_sub(0, wrap_sub(0, e) >> frac_bits);  // ceil
    const int64_t mant = exp2_fixed(wrap_sub(e, wrap_shl(z, frac_bits)), frac_bits);
    const int64_t cap = static_cast<int64_t>(1) << cap_bits;
    const int64_t up_max = cap_bits - EXP2_FRAC_BITS + 1;
    const int64_t zu = wrap_sub(z, EXP2_FRAC_BITS), zd = wrap_sub(EXP2_FRAC_BITS, z);
    const int64_t up = zu < 0 ? 0 : (zu > up_max ? up_max : zu);
    const int64_t down = zd < 0 ? 0 : (zd > 62 ? 62 : zd);
    const int64_t v = rshift_round(wrap_shl(mant, static_cast<int>(up)), static_cast<int>(down));
    return v < cap ? v : cap;
}

// ---- Lookup tables (edgec/numerics/lut.py) -----------------------------------------------------

// The table entry of an int8 code: table[q + 128]. The 256-entry table is computed at compile time
// by build_lut (float64, once) and emitted as integers, so the simulator and the HLS read the same
// values. T is the table's element type (e.g. ap_int<8>, ap_int<16>, int32_t).
template <typename T>
inline T lut_lookup(const T table[256], code_t q) {
#pragma HLS INLINE
    return table[static_cast<int>(q) + 128];
}

// Linear interpolation between the two knots around a code q of an in_bits-bit signed input (exact at
// the knots), as interp_lookup in lut.py: knots holds 2^knot_bits + 1 values 2^step codes apart, with
// step = in_bits - knot_bits; u = q + 2^(in_bits-1), j = u >> step, r = u - j * 2^step and
// y = t[j] + round_half_even((t[j+1] - t[j]) * r / 2^step). Domain: q in the in_bits range.
template <typename T>
inline int64_t interp_lookup(const T *knots, int64_t q, int in_bits, int knot_bits) {
#pragma HLS INLINE
    const int step = in_bits - knot_bits;
    const int64_t u = wrap_add(q, static_cast<int64_t>(1) << (in_bits - 1));
    const int64_t j = u >> step;
    const int64_t lo = knots[j];
    const int64_t r = wrap_sub(u, wrap_shl(j, step));
    return wrap_add(lo, rshift_round(wrap_mul(wrap_sub(static_cast<int64_t>(knots[j + 1]), lo), r), step));
}

}  // namespace edgec

#endif  // EDGEC_NUMERICS_H_
