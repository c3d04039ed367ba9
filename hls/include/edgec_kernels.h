// edgec HLS kernels for one Mamba decode step. Each kernel mirrors, operation for operation, the
// handler of the same op in runtime/sim_int.py (the bit-accurate simulator); the integer primitives
// come from edgec_numerics.h, which mirrors edgec/numerics/fixed.py.
//
// Conventions: activations are int64_t buffers holding values already saturated to their declared
// width (8, 16, 24 or 32 bits); weights are int8 and every per-channel constant (multiplier, shift,
// bias, LUT, decay coefficient) is an int64 array, both read from DRAM (m_axi) at fixed offsets.
// Loop trip counts are template parameters so that HLS sees static bounds.
#ifndef EDGEC_KERNELS_H
#define EDGEC_KERNELS_H

#include <stdint.h>

#include "edgec_numerics.h"

namespace edgec {

// Embedding row -> residual codes: out[d] = requant(table[token, d], m[token], shift[token], bits).
template <int V, int D>
void embed(int64_t token, const int8_t *table, const int64_t *m, const int64_t *shift, int bits, int64_t out[D]) {
embed_row:
    for (int d = 0; d < D; d++) {
#pragma HLS PIPELINE II = 1
        out[d] = requant((int64_t)table[token * D + d], m[token], (int)shift[token], bits);
    }
}

// Integer RMSNorm (no gain: it is folded into the next linear layer), see rmsnorm_int in
// runtime/int_ops.py: rms = isqrt(sum(x^2) / D + eps); inv = 2^(b+16) / rms with b = bit_length(rms).
template <int D>
void rmsnorm(const int64_t x[D], int64_t eps_q, int64_t m, int shift, int64_t out[D]) {
    int64_t sumsq = 0;
rmsnorm_sumsq:
    for (int d = 0; d < D; d++) {
#pragma HLS PIPELINE II = 1
        sumsq += x[d] * x[d];
    }
    int64_t rms = isqrt(sumsq / D + eps_q);  // non-negative: C++ division floors like Python's //
    if (rms < 1) rms = 1;
    int b = 0;
rmsnorm_bitlen:
    for (int i = 0; i < 63; i++) {
        if ((rms >> i) != 0) b = i + 1;
    }
    const int64_t inv = ((int64_t)1 << (b + 16)) / rms;
rmsnorm_scale:
    for (int d = 0; d < D; d++) {
#pragma HLS PIPELINE II = 1
        out[d] = requant(x[d] * inv, m, shift + b + 16, 8);
    }
}

// The int8 matrix-vector engine: y[n] = requant(sum_k x[k] W[n, k] + bias[n], m[n], shift[n], BITS).
// BITS == 0 keeps the raw accumulator (lm_head logits). The dot product is unrolled by P (P MACs per
// cycle; the caller partitions x cyclically by P); rows stream W from DRAM in row-major bursts.
template <int K, int N, int P, bool HAS_BIAS, int BITS>
void linear(const int64_t x[K], const int8_t *w, const int64_t *bias, const int64_t *m, const int64_t *shift,
            int64_t y[N]) {
linear_rows:
    for (int n = 0; n < N; n++) {
        int64_t acc = 0;
        if (HAS_BIAS) acc = bias[n];
    linear_dot:
        for (int k = 0; k < K; k++) {
#pragma HLS PIPELINE II = 1
#pragma HLS UNROLL factor = P
            acc += x[k] * (int64_t)w[(int64_t)n * K + k];
        }
        if (BITS) {
            y[n] = requant(acc, m[n], (int)shift[n], BITS);
        } else {
            y[n] = acc;
        }
    }
}

// Depthwise causal conv, one step: window = [state (oldest first), x]; the state (int8 codes, as x)
// shifts by one.
template <int E, int KT, bool HAS_BIAS>
void conv1d_step(const int64_t x[E], int8_t state[E][KT - 1], const int8_t *taps, const int64_t *bias,
                 const int64_t *m, const int64_t *shift, int bits, int64_t y[E]) {
conv_channels:
    for (int e = 0; e < E; e++) {
#pragma HLS PIPELINE II = 1
        int64_t acc = 0;
        if (HAS_BIAS) acc = bias[e];
    conv_taps:
        for (int j = 0; j < KT - 1; j++) acc += state[e][j] * (int64_t)taps[e * KT + j];
        acc += x[e] * (int64_t)taps[e * KT + KT - 1];
        y[e] = requant(acc, m[e], (int)shift[e], bits);
    conv_shift:
        for (int j = 0; j < KT - 2; j++) state[e][j] = state[e][j + 1];
        state[e][KT - 2] = (int8_t)x[e];
    }
}

// A one-input nonlinearity: out[i] = table[x[i] + 128] (exact by construction). The 256 entries are
// burst-read into a local ROM once per call, so the lookups never wait on DRAM.
template <int N>
void lut(const int64_t x[N], const int64_t *table, int64_t out[N]) {
    int64_t rom[256];
lut_load:
    for (int i = 0; i < 256; i++) {
#pragma HLS PIPELINE II = 1
        rom[i] = table[i];
    }
lut_lookup_loop:
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
        out[i] = rom[x[i] + 128];
    }
}

// Selective-scan step for all channels: decay = 2^(dt * a_q / 2^a_frac) in Q30,
// h = sat32(requant(h, decay, 30) + requant(dt * u * B, bu)), y = sat(requant(C . h, y) + requant(u, d)).
template <int E, int NS>
void scan_step(const int64_t u[E], const int64_t dt[E], const int64_t b[NS], const int64_t c[NS],
               int32_t h[E][NS], const int64_t *a_q, int a_frac, int64_t bu_m, int bu_shift, int64_t y_m,
               int y_shift, const int64_t *d_m, const int64_t *d_shift, int y_bits, int64_t y[E]) {
scan_channels:
    for (int e = 0; e < E; e++) {
        int64_t acc = 0;
    scan_states:
        for (int n = 0; n < NS; n++) {
#pragma HLS PIPELINE II = 1
            const int64_t decay = exp2_fixed(dt[e] * a_q[e * NS + n], a_frac);
            const int64_t bu = requant(dt[e] * u[e] * b[n], bu_m, bu_shift, 32);
            h[e][n] = (int32_t)saturate(requant(h[e][n], decay, 30, 32) + bu, 32);
            acc += (int64_t)h[e][n] * c[n];
        }
        y[e] = saturate(requant(acc, y_m, y_shift, 32) + requant(u[e], d_m[e], (int)d_shift[e], 32), y_bits);
    }
}

// Gate y * g: the wide product (bits == 0), or requantized to int8 when no rotation follows.
template <int N>
void mul(const int64_t a[N], const int64_t b[N], int64_t m, int shift, int bits, int64_t out[N]) {
mul_loop:
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
        out[i] = bits ? requant(a[i] * b[i], m, shift, bits) : a[i] * b[i];
    }
}

// Exact Hadamard transform of the zero-padded input (n = KH * 2^M), then one requant to int8.
// Order (mirrors hadamard_transform_int): rows of length BLOCK = 2^M; butterfly stages s = 0..M-1
// with h = 2^s, pair p joins j = (p / h) * 2h + p % h and j + h; then out[r, c] = sum_s H_K[r, s] row_s[c].
// Each stage touches every element once, so successive pairs are independent.
template <int DIM, int KH, int M>
void hadamard(const int64_t x[DIM], const int64_t *hk, int64_t m, int shift, int64_t out[KH << M]) {
    const int BLOCK = 1 << M;
    int64_t z[KH << M];
    int64_t hk_local[KH * KH];
hadamard_load_base:
    for (int i = 0; i < KH * KH; i++) {
#pragma HLS PIPELINE II = 1
        hk_local[i] = hk[i];
    }
hadamard_pad:
    for (int i = 0; i < (KH << M); i++) {
#pragma HLS PIPELINE II = 1
        z[i] = i < DIM ? x[i] : 0;
    }
hadamard_stages:
    for (int s = 0; s < M; s++) {
        const int h = 1 << s;
    hadamard_rows:
        for (int r = 0; r < KH; r++) {
        hadamard_pairs:
            for (int p = 0; p < BLOCK / 2; p++) {
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = z inter false
                const int j = r * BLOCK + (p / h) * 2 * h + p % h;
                const int64_t a = z[j], bb = z[j + h];
                z[j] = a + bb;
                z[j + h] = a - bb;
            }
        }
    }
hadamard_mix_rows:
    for (int r = 0; r < KH; r++) {
    hadamard_mix_cols:
        for (int col = 0; col < BLOCK; col++) {
#pragma HLS PIPELINE II = 1
            int64_t acc = 0;
        hadamard_mix_sum:
            for (int s = 0; s < KH; s++) acc += hk_local[r * KH + s] * z[s * BLOCK + col];
            out[r * BLOCK + col] = requant(acc, m, shift, 8);
        }
    }
}

// Residual add: the skip input is rescaled to the output scale; b is already there.
template <int D>
void residual_add(const int64_t skip[D], const int64_t b[D], int64_t m, int shift, int bits, int64_t out[D]) {
residual_loop:
    for (int d = 0; d < D; d++) {
#pragma HLS PIPELINE II = 1
        out[d] = saturate(requant(skip[d], m, shift, 32) + b[d], bits);
    }
}

// Zero a state array at reset (a plain loop: memset is not synthesizable on partitioned arrays).
template <typename T>
void clear_state(T *state, unsigned long bytes) {
clear_state_loop:
    for (unsigned long i = 0; i < bytes / sizeof(T); i++) {
#pragma HLS PIPELINE II = 1
        state[i] = 0;
    }
}

// Copy a contiguous slice (the SPLIT of in_proj / x_proj outputs into their segments).
template <int N>
void slice(const int64_t *src, int64_t dst[N]) {
slice_loop:
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
        dst[i] = src[i];
    }
}

}  // namespace edgec

#endif  // EDGEC_KERNELS_H
