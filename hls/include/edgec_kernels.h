// edgec HLS kernels for one decode step (Mamba, Mamba-2, xLSTM). Each kernel mirrors, operation for operation,
// the handler of the same op in runtime/sim_int.py (the bit-accurate simulator); the integer primitives
// come from edgec_numerics.h, which mirrors edgec/numerics/fixed.py and lut.py.
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

// Constants of the int profile defined in runtime/int_ops.py and runtime/sim_int.py (same names there;
// tests/test_hls_kernels.py checks the values).
static const int INV_BITS = 16;       // inv = 2^(b+16) / rms has 17 significant bits
static const int NORM_BITS = 24;      // a per-head norm brings its centred input below 2^24 per head
static const int LOG_FRAC_BITS = 20;  // mLSTM gates and stabilizer m in log2 units, Q20
static const int DEN_BITS = 60;       // the mLSTM denominator is formed below 2^60

// 2^(b + INV_BITS) / rms with rms = max(isqrt(sumsq / d + eps_q), 1) and b = bit_length(rms) (returned in
// *b), as rmsnorm_int in runtime/int_ops.py. sumsq, eps_q >= 0: C++ division floors like Python's //.
inline int64_t rms_inverse(int64_t sumsq, int64_t d, int64_t eps_q, int *b) {
    int64_t rms = isqrt(sumsq / d + eps_q);
    if (rms < 1) rms = 1;
    *b = bit_length(rms);
    return ((int64_t)1 << (*b + INV_BITS)) / rms;
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
    int b;
    const int64_t inv = rms_inverse(sumsq, D, eps_q, &b);
rmsnorm_scale:
    for (int d = 0; d < D; d++) {
#pragma HLS PIPELINE II = 1
        out[d] = requant(x[d] * inv, m, shift + b + INV_BITS, 8);
    }
}

// Integer RMSNorm of G equal groups of D / G values, each by its own rms (op_rmsnorm with `groups`), to
// `bits`-bit codes with one multiplier m, shift (the gain is folded downstream). WIDE (a product given no
// format, e.g. Mamba-2's gated y * silu(z)): each group is first brought below 2^norm_bits by a right shift
// (rounding half to even) of block = max(bit_length(max |x|) - norm_bits, 0), eps_q rounded down alike by
// min(2 * block, 62) bits (block floating point); otherwise the codes are normalized as they are.
template <int D, int G, bool WIDE>
void rmsnorm_groups(const int64_t x[D], int64_t eps_q, int64_t m, int shift, int norm_bits, int bits,
                    int64_t out[D]) {
    const int DG = D / G;
    int64_t v[D / G];
norm_groups:
    for (int g = 0; g < G; g++) {
        int64_t xmax = 0, sumsq = 0;
        int block = 0;
        if (WIDE) {
        norm_groups_max:
            for (int d = 0; d < DG; d++) {
#pragma HLS PIPELINE II = 1
                const int64_t a = x[g * DG + d] < 0 ? -x[g * DG + d] : x[g * DG + d];
                xmax = a > xmax ? a : xmax;
            }
            const int over = bit_length(xmax) - norm_bits;
            block = over > 0 ? over : 0;
        }
    norm_groups_sumsq:
        for (int d = 0; d < DG; d++) {
#pragma HLS PIPELINE II = 1
            v[d] = rshift_round(x[g * DG + d], block);
            sumsq += v[d] * v[d];
        }
        int b;
        const int64_t inv = rms_inverse(sumsq, DG, rshift_round(eps_q, 2 * block < 62 ? 2 * block : 62), &b);
    norm_groups_scale:
        for (int d = 0; d < DG; d++) {
#pragma HLS PIPELINE II = 1
            out[g * DG + d] = requant(v[d] * inv, m, shift + b + INV_BITS, bits);
        }
    }
}

// Per-head integer LayerNorm (op_head_layernorm): per head, c = DH * x - sum(x) (exact), a right shift
// (rounding half to even) by block = max(bit_length(max |c|) - NORM_BITS, 0), then the integer RMSNorm of
// c with eps_q rounded down by 2 * block bits and per-channel multipliers m (signed: the gain is folded in).
template <int H, int DH>
void head_layernorm(const int64_t x[H * DH], int64_t eps_q, const int64_t *m, const int64_t *shift, int bits,
                    int64_t out[H * DH]) {
head_norm_heads:
    for (int h = 0; h < H; h++) {
        int64_t c[DH];
        int64_t sum = 0, cmax = 0, sumsq = 0;
    head_norm_sum:
        for (int d = 0; d < DH; d++) {
#pragma HLS PIPELINE II = 1
            sum += x[h * DH + d];
        }
    head_norm_centre:
        for (int d = 0; d < DH; d++) {
#pragma HLS PIPELINE II = 1
            c[d] = x[h * DH + d] * DH - sum;
            const int64_t a = c[d] < 0 ? -c[d] : c[d];
            cmax = a > cmax ? a : cmax;
        }
        const int over = bit_length(cmax) - NORM_BITS;
        const int block = over > 0 ? over : 0;
    head_norm_shift:
        for (int d = 0; d < DH; d++) {
#pragma HLS PIPELINE II = 1
            c[d] = rshift_round(c[d], block);
            sumsq += c[d] * c[d];
        }
        int b;
        const int64_t inv = rms_inverse(sumsq, DH, rshift_round(eps_q, 2 * block < 62 ? 2 * block : 62), &b);
    head_norm_scale:
        for (int d = 0; d < DH; d++) {
#pragma HLS PIPELINE II = 1
            const int j = h * DH + d;
            out[j] = requant(c[d] * inv, m[j], (int)shift[j] + b + INV_BITS, bits);
        }
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

// A function of one wide input through an interpolated table (op_softcap): 2^KNOT_BITS + 1 knots,
// burst-read into a local ROM once per call, then interp_lookup per element.
template <int N, int KNOT_BITS>
void interp_lut(const int64_t x[N], const int64_t *knots, int in_bits, int64_t out[N]) {
    int64_t rom[(1 << KNOT_BITS) + 1];
interp_load:
    for (int i = 0; i < (1 << KNOT_BITS) + 1; i++) {
#pragma HLS PIPELINE II = 1
        rom[i] = knots[i];
    }
interp_lookup_loop:
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
        out[i] = interp_lookup(rom, x[i], in_bits, KNOT_BITS);
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

// One token of the Mamba-2 SSD cell for every head (ssd_step_int in runtime/ssd_int.py). Head hd reads group
// g = hd / (H / G) of B and C; its dt code selects dt_q and the Q30 decay from the head's 256-entry tables
// (index dt + 128; one entry of each is read per head). Per head, channel p and state n:
//   h = sat32(requant(h, decay, 30) + requant(dt_q x B, bu_m[hd], bu_shift[hd]))
//   y = sat_y(requant(sum_n C h, y_m, y_shift) + requant(x, d_m[hd], d_shift[hd]))
// (every requant to 32 bits, rounding half to even; the C . h sum is exact in int64: |h| < 2^31, |C| <= 2^7).
// The state [H, P, N] is swept once per token, one row of N values at a time (read, update, write back), so
// `h` may be an on-chip array or a window of a DRAM port with the same arithmetic.
template <int H, int G, int P, int N>
void ssd_step(const int64_t x[H * P], const int64_t dt[H], const int64_t b[G * N], const int64_t c[G * N], int32_t *h,
              const int64_t *dt_q, const int64_t *decay, const int64_t *bu_m, const int64_t *bu_shift, int64_t y_m,
              int y_shift, const int64_t *d_m, const int64_t *d_shift, int y_bits, int64_t y[H * P]) {
    int32_t row[N];
ssd_heads:
    for (int hd = 0; hd < H; hd++) {
        const int g = hd / (H / G);
        const int64_t code = dt[hd] + 128;
        const int64_t dtq = dt_q[hd * 256 + code];
        const int64_t dec = decay[hd * 256 + code];
        const int64_t bm = bu_m[hd], dm = d_m[hd];
        const int bs = (int)bu_shift[hd], ds = (int)d_shift[hd];
    ssd_channels:
        for (int p = 0; p < P; p++) {
            const int j = hd * P + p;
            int32_t *hrow = h + (long)j * N;
            const int64_t xd = dtq * x[j];
            int64_t acc = 0;
        ssd_row_read:
            for (int n = 0; n < N; n++) {
#pragma HLS PIPELINE II = 1
                row[n] = hrow[n];
            }
        ssd_states:
            for (int n = 0; n < N; n++) {
#pragma HLS PIPELINE II = 1
                const int64_t bu = requant(xd * b[g * N + n], bm, bs, 32);
                const int64_t hn = saturate(requant(row[n], dec, 30, 32) + bu, 32);
                row[n] = (int32_t)hn;
                acc += hn * c[g * N + n];
            }
        ssd_row_write:
            for (int n = 0; n < N; n++) {
#pragma HLS PIPELINE II = 1
                hrow[n] = row[n];
            }
            y[j] = saturate(requant(acc, y_m, y_shift, 32) + requant(x[j], dm, ds, 32), y_bits);
        }
    }
}

// Integer constants of one mLSTM cell: MlstmConstants of runtime/sim_int.py, field for field (the knots
// of the forget gate's log-sigmoid are passed apart, as an int64 array in DRAM).
struct mlstm_constants {
    int64_t i_m, i_shift, kv_m, kv_shift, k_m, k_shift, guard, log_inv_qn, eps, r_m, r_shift, gate_bits, h_bits;
};

// One token of the integer mLSTM cell for every head (mlstm_step_int in runtime/sim_int.py). Per head:
//   m' = max(logf(f) + m, i2) with i2 = requant(i); f_act = 2^(logf + m - m'), i_act = 2^(i2 - m') (Q30);
//   n' = sat32(requant(n, f_act, 30) + requant(k i_act)), C' = sat32(requant(C, f_act, 30) + requant(k v i_act));
//   num = q . C' (per column e), qn = q . n'; den = max(max(|qn| << guard, 2^(log_inv_qn - m')) + eps, 1);
//   h = num / den through a 15-bit reciprocal mantissa, two rounding shifts around r_m, saturated to h_bits.
// C is swept once per token, one row of DV values at a time (read, update, write back), so `c` may be an
// on-chip array or a window of a DRAM port (state too large for the chip) with the same arithmetic.
template <int H, int DQK, int DV, int KNOT_BITS>
void mlstm_step(const int64_t q[H * DQK], const int64_t k[H * DQK], const int64_t v[H * DV], const int64_t i_gate[H],
                const int64_t f_gate[H], int32_t *c, int32_t n[H * DQK], int32_t m[H], const int64_t *logf,
                const mlstm_constants &kc, int64_t h[H * DV]) {
    int64_t knots[(1 << KNOT_BITS) + 1];
    int64_t num[DV];
    int32_t row[DV];
mlstm_load_knots:
    for (int i = 0; i < (1 << KNOT_BITS) + 1; i++) {
#pragma HLS PIPELINE II = 1
        knots[i] = logf[i];
    }
mlstm_heads:
    for (int hd = 0; hd < H; hd++) {
        const int64_t i2 = requant(i_gate[hd], kc.i_m, (int)kc.i_shift, 32);
        const int64_t decayed = wrap_add(interp_lookup(knots, f_gate[hd], (int)kc.gate_bits, KNOT_BITS), m[hd]);
        const int64_t m_new = decayed > i2 ? decayed : i2;
        const int64_t f_act = exp2_fixed(decayed - m_new, LOG_FRAC_BITS);  // Q30
        const int64_t i_act = exp2_fixed(i2 - m_new, LOG_FRAC_BITS);
        m[hd] = (int32_t)m_new;
        int64_t qn = 0;
    mlstm_n:
        for (int d = 0; d < DQK; d++) {
#pragma HLS PIPELINE II = 1
            const int j = hd * DQK + d;
            const int64_t nn = saturate(requant(n[j], f_act, 30, 32)
                                        + requant(k[j] * i_act, kc.k_m, (int)kc.k_shift, 32), 32);
            n[j] = (int32_t)nn;
            qn = wrap_add(qn, q[j] * nn);
        }
    mlstm_num_clear:
        for (int e = 0; e < DV; e++) num[e] = 0;
    mlstm_rows:
        for (int d = 0; d < DQK; d++) {
            const int j = hd * DQK + d;
            int32_t *crow = c + (long)j * DV;
        mlstm_row_read:
            for (int e = 0; e < DV; e++) {
#pragma HLS PIPELINE II = 1
                row[e] = crow[e];
            }
        mlstm_row_update:
            for (int e = 0; e < DV; e++) {
#pragma HLS PIPELINE II = 1
                const int64_t kv = wrap_mul(k[j] * v[hd * DV + e], i_act);
                const int64_t cc = saturate(requant(row[e], f_act, 30, 32) + requant(kv, kc.kv_m, (int)kc.kv_shift, 32),
                                            32);
                row[e] = (int32_t)cc;
                num[e] = wrap_add(num[e], q[j] * cc);
            }
        mlstm_row_write:
            for (int e = 0; e < DV; e++) {
#pragma HLS PIPELINE II = 1
                crow[e] = row[e];
            }
        }
        const int64_t floor = exp2_int(wrap_sub(kc.log_inv_qn, m_new), LOG_FRAC_BITS, DEN_BITS - 1);
        const int64_t big = wrap_shl(qn < 0 ? -qn : qn, (int)kc.guard);
        int64_t den = wrap_add(big > floor ? big : floor, kc.eps);
        if (den < 1) den = 1;
        int shift;
        const int64_t y15 = rshift_round(reciprocal_fixed(den, &shift), 16);
        const int64_t total = shift - 16 - kc.guard + kc.r_shift;
        const int64_t down = total > 0 ? total : 0;
    mlstm_out:
        for (int e = 0; e < DV; e++) {
#pragma HLS PIPELINE II = 1
            const int64_t p = wrap_mul(num[e], y15);
            const int64_t over = bit_length(p < 0 ? -p : p) - REQUANT_INPUT_BITS;
            const int64_t first = over < 0 ? 0 : (over > down ? down : over);
            const int64_t prod = wrap_mul(saturate(rshift_round(p, (int)first), REQUANT_INPUT_BITS + 1), kc.r_m);
            const int64_t rest = down - first;
            int64_t out = rest > 62 ? 0 : rshift_round(prod, (int)rest);
            if (total < 0) {  // a denominator below the accumulator's unit: shift left, saturating first
                out = wrap_shl(saturate(prod, REQUANT_INPUT_BITS + 1), -total < 15 ? (int)-total : 15);
            }
            h[hd * DV + e] = saturate(out, (int)kc.h_bits);
        }
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
