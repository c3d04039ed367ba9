// edgec HLS kernels of the vision transformer (ViT-MoE) integer ops. Each kernel mirrors, operation for
// operation, its handler in runtime/vit_int.py (class VitIntOps, mixed into the IntSimulator) or the
// edgec.numerics function that handler calls; tests/test_hls_vit_kernels.py checks them bit for bit.
//
// Conventions (as edgec_kernels.h): activations are int64_t buffers holding codes already saturated to
// their declared width; weights are int8; per-channel constants (multiplier, shift, bias, table) are
// int64 arrays. Loop trip counts are template parameters. Layouts are row-major, token-major:
//   tokens x channels [T, D] -> x[t * D + d];  q, k, v, context [T, H * DH] (head h owns columns
//   h * DH .. h * DH + DH - 1);  scores and probabilities [H, T, T] -> s[(h * T + i) * T + j].
// A GELU is a 256-entry table of an int8 code: edgec::lut<N> of edgec_kernels.h (op_gelu = lookup).
#ifndef EDGEC_VIT_KERNELS_H
#define EDGEC_VIT_KERNELS_H

#include <stdint.h>

#include "edgec_kernels.h"
#include "edgec_numerics.h"

namespace edgec {

// Constants of edgec/numerics/layernorm.py (same names there without the LN_ prefix).
static const int LN_NORM_BITS = 20;   // centred values brought near 2^20 per row (block floating point)
static const int LN_INV_BITS = 16;    // 1 / r to 16 bits
static const int LN_EPS_BITS = 60;    // eps_q << 2 up stays below 2^60
static const int LN_GUARD_BITS = 8;   // the bias is added 8 bits below the output LSB
// LutExp (edgec/numerics/softmax.py): 256 entries for the max-subtracted score d in [-255, 0].
static const int SOFTMAX_TABLE_SPAN = 255;
// Exp2Exp's e lies in [0, 2^30]: 31 bits.
static const int EXP2_EXP_BITS = EXP2_FRAC_BITS + 1;

// ---- patch embedding (op_patch_embed: vit_float.patchify, int_matmul, bias, _requant_to_output) ----------

// patchify(x, P) for one image: img [IH, IW, C] (centred pixel codes, channels last) -> patches [N, C*P*P]
// with N = (IH/P) * (IW/P) patches row-major (n = gy * IW/P + gx), each flattened in (c, y, x) order (a conv
// weight's): patches[n * K + (c * P + y) * P + x] = img[((gy * P + y) * IW + gx * P + x) * C + c].
template <int IH, int IW, int C, int P>
void patchify(const int64_t img[IH * IW * C], int64_t patches[(IH / P) * (IW / P) * C * P * P]) {
    static_assert(IH % P == 0 && IW % P == 0, "patchify: the image must be a whole number of patches");
    const int GW = IW / P, K = C * P * P;
patchify_patches:
    for (int n = 0; n < (IH / P) * GW; n++) {
    patchify_elems:
        for (int f = 0; f < K; f++) {
#pragma HLS PIPELINE II = 1
            const int c = f / (P * P), y = (f / P) % P, x = f % P;
            patches[n * K + f] = img[(((n / GW) * P + y) * IW + (n % GW) * P + x) * C + c];
        }
    }
}

// op_patch_embed: per patch n and output channel d, acc = sum_f patch[f] w[d, f] (+ bias[d]) exactly, then
// requant(acc, m[d], shift[d], bits) (per-channel multipliers into the output scale, _requant_to_output);
// bits = 0 keeps the raw accumulators. w is the conv weight [D, C, P, P] = [D, C*P*P] int8. out [N, D].
template <int IH, int IW, int C, int P, int D, bool HAS_BIAS>
void patch_embed(const int64_t img[IH * IW * C], const int8_t *w, const int64_t *bias, const int64_t *m,
                 const int64_t *shift, int bits, int64_t out[(IH / P) * (IW / P) * D]) {
    static_assert(IH % P == 0 && IW % P == 0, "patch_embed: the image must be a whole number of patches");
    const int GW = IW / P, K = C * P * P;
    int64_t patch[C * P * P];
patch_embed_patches:
    for (int n = 0; n < (IH / P) * GW; n++) {
    patch_embed_gather:
        for (int f = 0; f < K; f++) {
#pragma HLS PIPELINE II = 1
            const int c = f / (P * P), y = (f / P) % P, x = f % P;
            patch[f] = img[(((n / GW) * P + y) * IW + (n % GW) * P + x) * C + c];
        }
    patch_embed_channels:
        for (int d = 0; d < D; d++) {
            int64_t acc = HAS_BIAS ? bias[d] : 0;
        patch_embed_dot:
            for (int f = 0; f < K; f++) {
#pragma HLS PIPELINE II = 1
                acc += patch[f] * (int64_t)w[(int64_t)d * K + f];
            }
            out[n * D + d] = bits ? requant(acc, m[d], (int)shift[d], bits) : acc;
        }
    }
}

// ---- cls token and position embedding (op_cls_pos) ----------------------------------------------------

// out[0, :] = table[0, :] (cls + pos[0], already rounded and saturated at compile time); out[t, :] =
// saturate(x[t-1, :] + table[t, :], bits) for the T - 1 patches. x [T-1, D], table [T, D], out [T, D].
template <int T, int D>
void cls_pos(const int64_t x[(T - 1) * D], const int64_t *table, int bits, int64_t out[T * D]) {
cls_pos_loop:
    for (int i = 0; i < T * D; i++) {
#pragma HLS PIPELINE II = 1
        out[i] = saturate(i < D ? table[i] : x[i - D] + table[i], bits);
    }
}

// op_cls_pool: the cls token's row. x [T, D] -> out [D].
template <int T, int D>
void cls_pool(const int64_t x[T * D], int64_t out[D]) {
cls_pool_loop:
    for (int d = 0; d < D; d++) {
#pragma HLS PIPELINE II = 1
        out[d] = x[d];
    }
}

// ---- LayerNorm (layernorm_int of edgec/numerics/layernorm.py, op_layernorm) --------------------------

// One row of D codes, the fields of LayerNormConstants: eps = k.eps (eps_q), m, shift, bias = k.m, k.shift,
// k.bias, out_bits = k.out_bits. AFFINE: m, shift, bias hold D per-channel values; else (the affine folded
// into the next linear) one value each, m[0], shift[0], bias[0] (bias 0). Steps of layernorm_int:
//   c = D x - sum(x); b = bit_length(max |c|); up = min(max(20 - b, 0), (60 - bit_length(eps)) / 2);
//   down = max(b - 20, 0); c = rshift_round(c << up, down);
//   ss = sum(c^2) + rshift_round(eps << 2 up, min(2 down, 62)); (y, s) = reciprocal_fixed(max(isqrt(ss), 1));
//   inv = rshift_round(y, 15); o = requant(c inv, m, min(shift + s - 15 - 8, 62), 48);
//   out = saturate(rshift_round(o + bias, 8), out_bits).
template <int D, bool AFFINE>
void layernorm(const int64_t x[D], int64_t eps, const int64_t *m, const int64_t *shift, const int64_t *bias,
               int out_bits, int64_t out[D]) {
    int64_t c[D];
    int64_t sum = 0, cmax = 0, ss = 0;
ln_sum:
    for (int i = 0; i < D; i++) {
#pragma HLS PIPELINE II = 1
        sum += x[i];
    }
ln_centre:
    for (int i = 0; i < D; i++) {
#pragma HLS PIPELINE II = 1
        c[i] = x[i] * D - sum;
        const int64_t a = c[i] < 0 ? -c[i] : c[i];
        cmax = a > cmax ? a : cmax;
    }
    const int b = bit_length(cmax);
    const int max_up = (LN_EPS_BITS - bit_length(eps)) / 2;
    int up = LN_NORM_BITS - b;
    up = up < 0 ? 0 : (up > max_up ? max_up : up);
    const int down = b > LN_NORM_BITS ? b - LN_NORM_BITS : 0;
ln_block:
    for (int i = 0; i < D; i++) {
#pragma HLS PIPELINE II = 1
        c[i] = rshift_round(wrap_shl(c[i], up), down);
        ss += c[i] * c[i];
    }
    ss += rshift_round(wrap_shl(eps, 2 * up), 2 * down < 62 ? 2 * down : 62);
    int64_t r = isqrt(ss);
    if (r < 1) r = 1;
    int s;
    const int drop = 31 - LN_INV_BITS;
    const int64_t inv = rshift_round(reciprocal_fixed(r, &s), drop);
ln_scale:
    for (int i = 0; i < D; i++) {
#pragma HLS PIPELINE II = 1
        const int j = AFFINE ? i : 0;
        const int64_t sh = shift[j] + s - drop - LN_GUARD_BITS;
        const int64_t o = requant(c[i] * inv, m[j], (int)(sh < 62 ? sh : 62), 48);
        out[i] = saturate(rshift_round(o + bias[j], LN_GUARD_BITS), out_bits);
    }
}

// op_layernorm on T tokens: layernorm<D, AFFINE> of each row of x [T, D] -> out [T, D].
template <int T, int D, bool AFFINE>
void layernorm_rows(const int64_t x[T * D], int64_t eps, const int64_t *m, const int64_t *shift,
                    const int64_t *bias, int out_bits, int64_t out[T * D]) {
ln_rows:
    for (int t = 0; t < T; t++) layernorm<D, AFFINE>(x + t * D, eps, m, shift, bias, out_bits, out + t * D);
}

// ---- attention products (op_attn_scores, op_attn_context, _product_requant) ---------------------------

// scores[h, i, j] = requant(sum_d q[i, h DH + d] k[j, h DH + d], m, shift, bits): exact int8 x int8 dot
// products per head, one (m, shift) per node (scale of q x scale of k x attention scale / output scale).
// q, k [T, H*DH] -> scores [H, T, T].
template <int T, int H, int DH>
void attn_scores(const int64_t q[T * H * DH], const int64_t k[T * H * DH], int64_t m, int shift, int bits,
                 int64_t scores[H * T * T]) {
scores_heads:
    for (int h = 0; h < H; h++) {
    scores_rows:
        for (int i = 0; i < T; i++) {
        scores_cols:
            for (int j = 0; j < T; j++) {
                int64_t acc = 0;
            scores_dot:
                for (int d = 0; d < DH; d++) {
#pragma HLS PIPELINE II = 1
                    acc += q[i * H * DH + h * DH + d] * k[j * H * DH + h * DH + d];
                }
                scores[(h * T + i) * T + j] = requant(acc, m, shift, bits);
            }
        }
    }
}

// context[i, h DH + d] = requant(sum_j probs[h, i, j] v[j, h DH + d], m, shift, bits): probabilities
// (unsigned, up to 16 bits) times int8 values, exact, heads concatenated. probs [H, T, T], v [T, H*DH]
// -> context [T, H*DH].
template <int T, int H, int DH>
void attn_context(const int64_t probs[H * T * T], const int64_t v[T * H * DH], int64_t m, int shift, int bits,
                  int64_t context[T * H * DH]) {
context_heads:
    for (int h = 0; h < H; h++) {
    context_rows:
        for (int i = 0; i < T; i++) {
        context_cols:
            for (int d = 0; d < DH; d++) {
                int64_t acc = 0;
            context_dot:
                for (int j = 0; j < T; j++) {
#pragma HLS PIPELINE II = 1
                    acc += probs[(h * T + i) * T + j] * v[j * H * DH + h * DH + d];
                }
                context[i * H * DH + h * DH + d] = requant(acc, m, shift, bits);
            }
        }
    }
}

// ---- softmax (softmax_int of edgec/numerics/softmax.py, op_softmax) ------------------------------------

// The normalization shared by every exp variant: (y, s) = reciprocal_fixed(sum e); P = 2^out_bits - 1;
// R = max(0, exp_bits + out_bits - 31) (SoftmaxConstants.norm_shift); mult = rshift_round(y P, R);
// p = min(rshift_round(e mult, s - R), P). Domain: 1 <= sum e < 2^62 and s - R <= 62.
template <int N>
void softmax_normalize(const int64_t e[N], int64_t sum, int exp_bits, int out_bits, int64_t p[N]) {
    int s;
    const int64_t y = reciprocal_fixed(sum, &s);
    const int64_t top = (static_cast<int64_t>(1) << out_bits) - 1;
    const int over = exp_bits + out_bits - 31;
    const int r = over > 0 ? over : 0;
    const int64_t mult = rshift_round(y * top, r);
softmax_scale:
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
        const int64_t v = s - r > 62 ? 0 : rshift_round(e[i] * mult, s - r);  // beyond 62: below half an LSB
        p[i] = v < top ? v : top;
    }
}

// softmax_int with a LutExp (int8 scores: every variant tabulated, op_softmax's attention case): d = q - max q,
// e = table[max(d, -255) + 255] (lookup at the int8 code d + 127), exp_bits = the LutExp's `bits`.
// One row: q [N] -> p [N], codes in [0, 2^out_bits - 1].
template <int N>
void softmax_table(const int64_t q[N], const int64_t table[256], int exp_bits, int out_bits, int64_t p[N]) {
    int64_t e[N];
    int64_t mx = q[0], sum = 0;
softmax_table_max:
    for (int i = 1; i < N; i++) {
#pragma HLS PIPELINE II = 1
        mx = q[i] > mx ? q[i] : mx;
    }
softmax_table_exp:
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
        const int64_t d = q[i] - mx;
        e[i] = table[(d < -SOFTMAX_TABLE_SPAN ? -SOFTMAX_TABLE_SPAN : d) + SOFTMAX_TABLE_SPAN];
        sum += e[i];
    }
    softmax_normalize<N>(e, sum, exp_bits, out_bits, p);
}

// softmax_table on ROWS rows of N (the [H, T, T] scores: ROWS = H * T, N = T); the table is burst-read into
// a local ROM once per call.
template <int ROWS, int N>
void softmax_table_rows(const int64_t q[ROWS * N], const int64_t *table, int exp_bits, int out_bits,
                        int64_t p[ROWS * N]) {
    int64_t rom[256];
softmax_table_load:
    for (int i = 0; i < 256; i++) {
#pragma HLS PIPELINE II = 1
        rom[i] = table[i];
    }
softmax_table_rows_loop:
    for (int r = 0; r < ROWS; r++) softmax_table<N>(q + r * N, rom, exp_bits, out_bits, p + r * N);
}

// softmax_int with an Exp2Exp (the router's 16-bit logits): e = exp2_fixed((q - max q) m, frac) in Q30,
// exp_bits = 31. One row: q [N] -> p [N].
template <int N>
void softmax_exp2(const int64_t q[N], int64_t m, int frac, int out_bits, int64_t p[N]) {
    int64_t e[N];
    int64_t mx = q[0], sum = 0;
softmax_exp2_max:
    for (int i = 1; i < N; i++) {
#pragma HLS PIPELINE II = 1
        mx = q[i] > mx ? q[i] : mx;
    }
softmax_exp2_exp:
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
        e[i] = exp2_fixed((q[i] - mx) * m, frac);
        sum += e[i];
    }
    softmax_normalize<N>(e, sum, EXP2_EXP_BITS, out_bits, p);
}

// softmax_exp2 on ROWS rows of N ([T, E] router logits: ROWS = T, N = E).
template <int ROWS, int N>
void softmax_exp2_rows(const int64_t q[ROWS * N], int64_t m, int frac, int out_bits, int64_t p[ROWS * N]) {
softmax_exp2_rows_loop:
    for (int r = 0; r < ROWS; r++) softmax_exp2<N>(q + r * N, m, frac, out_bits, p + r * N);
}

// ---- router (op_route_logits, topk_int / op_topk) -----------------------------------------------------

// logits[t, e] = requant(sum_d x[t, d] w[d, e] (+ bias[e]), m[e], shift[e], bits), bits = 0: raw
// accumulators. w is M3ViT's w_gate layout [D, E] int8 (per expert column scales). x [T, D] -> [T, E].
template <int T, int D, int E, bool HAS_BIAS>
void route_logits(const int64_t x[T * D], const int8_t *w, const int64_t *bias, const int64_t *m,
                  const int64_t *shift, int bits, int64_t logits[T * E]) {
route_tokens:
    for (int t = 0; t < T; t++) {
    route_experts:
        for (int e = 0; e < E; e++) {
            int64_t acc = HAS_BIAS ? bias[e] : 0;
        route_dot:
            for (int d = 0; d < D; d++) {
#pragma HLS PIPELINE II = 1
                acc += x[t * D + d] * (int64_t)w[d * E + e];
            }
            logits[t * E + e] = bits ? requant(acc, m[e], (int)shift[e], bits) : acc;
        }
    }
}

// topk_int for one row: K passes of argmax over `scores` [E], each a scan from index 0 that moves only on a
// strictly greater score (ties to the lower index), the taken score replaced by -2^63. top_idx [K] (descending
// by score), top_values[j] = values[top_idx[j]]. op_topk ranks on the router's logit codes and returns the
// probabilities: scores = logits, values = probs; topk_int(p) alone: scores = values = p.
// Domain: scores > -2^63, 1 <= K <= E.
template <int E, int K>
void topk(const int64_t scores[E], const int64_t values[E], int64_t top_values[K], int64_t top_idx[K]) {
    const int64_t taken = static_cast<int64_t>(UINT64_C(0x8000000000000000));
    int64_t work[E];
topk_copy:
    for (int i = 0; i < E; i++) {
#pragma HLS PIPELINE II = 1
        work[i] = scores[i];
    }
topk_passes:
    for (int j = 0; j < K; j++) {
        int best = 0;
    topk_scan:
        for (int i = 1; i < E; i++) {
#pragma HLS PIPELINE II = 1
            if (work[i] > work[best]) best = i;
        }
        top_idx[j] = best;
        top_values[j] = values[best];
        work[best] = taken;
    }
}

// topk on T rows: scores, values [T, E] -> top_values, top_idx [T, K].
template <int T, int E, int K>
void topk_rows(const int64_t scores[T * E], const int64_t values[T * E], int64_t top_values[T * K],
               int64_t top_idx[T * K]) {
topk_rows_loop:
    for (int t = 0; t < T; t++) topk<E, K>(scores + t * E, values + t * E, top_values + t * K, top_idx + t * K);
}

// ---- expert mixture (op_moe, vit_float.expert_slots) ---------------------------------------------------

// op_moe on T tokens x [T, D] (int8 codes) routed by idx [T, K] (experts, from topk) with weights w [T, K]
// (16-bit route probabilities). Experts outermost (Edge-MoE's order): expert e, if any token chose it, has
// its weights read once into local buffers, then runs on its tokens in token order:
//   h = lut_e[requant(fc1_w[e] . x_t + fc1_b[e], m1[e], sh1[e], 8)]      (fc1 -> int8 -> GELU table)
//   a = fc2_w[e] . h + fc2_b[e]                                          (the slot's int32-range accumulators)
// and for every slot j of token t with idx[t, j] = e: y[t] += requant(a w[t, j], m2[e], sh2[e], 32).
// Finally out = saturate(y, out_bits). The simulator sums the K requantized slots in slot order; each term is
// below 2^31, so the exact int64 sum is the same in any order and nothing saturates before the end.
// Layouts: fc1_w [E, HM, D], fc1_b / m1 / sh1 [E, HM], luts [E, 256], fc2_w [E, D, HM], fc2_b / m2 / sh2
// [E, D]. Domain: idx in [0, E); |a w| < 2^47 (requant's input bound).
template <int T, int D, int HM, int E, int K>
void moe(const int64_t x[T * D], const int64_t w[T * K], const int64_t idx[T * K], const int8_t *fc1_w,
         const int64_t *fc1_b, const int64_t *m1, const int64_t *sh1, const int64_t *luts, const int8_t *fc2_w,
         const int64_t *fc2_b, const int64_t *m2, const int64_t *sh2, int out_bits, int64_t out[T * D]) {
    int64_t y[T * D];
    int8_t w1[HM * D], w2[D * HM];
    int64_t b1[HM], mm1[HM], s1[HM], rom[256], b2[D], mm2[D], s2[D], h[HM];
moe_clear:
    for (int i = 0; i < T * D; i++) {
#pragma HLS PIPELINE II = 1
        y[i] = 0;
    }
moe_experts:
    for (int e = 0; e < E; e++) {
        bool active = false;
    moe_active:
        for (int i = 0; i < T * K; i++) active = active || idx[i] == e;
        if (!active) continue;  // an expert no token chose: its weights are not read
    moe_load_w1:
        for (int i = 0; i < HM * D; i++) {
#pragma HLS PIPELINE II = 1
            w1[i] = fc1_w[(int64_t)e * HM * D + i];
        }
    moe_load_w2:
        for (int i = 0; i < D * HM; i++) {
#pragma HLS PIPELINE II = 1
            w2[i] = fc2_w[(int64_t)e * D * HM + i];
        }
    moe_load_c1:
        for (int n = 0; n < HM; n++) {
#pragma HLS PIPELINE II = 1
            b1[n] = fc1_b[e * HM + n];
            mm1[n] = m1[e * HM + n];
            s1[n] = sh1[e * HM + n];
        }
    moe_load_lut:
        for (int i = 0; i < 256; i++) {
#pragma HLS PIPELINE II = 1
            rom[i] = luts[e * 256 + i];
        }
    moe_load_c2:
        for (int c = 0; c < D; c++) {
#pragma HLS PIPELINE II = 1
            b2[c] = fc2_b[e * D + c];
            mm2[c] = m2[e * D + c];
            s2[c] = sh2[e * D + c];
        }
    moe_tokens:
        for (int t = 0; t < T; t++) {
            bool routed = false;
        moe_routed:
            for (int j = 0; j < K; j++) routed = routed || idx[t * K + j] == e;
            if (!routed) continue;
        moe_fc1:
            for (int n = 0; n < HM; n++) {
                int64_t acc = b1[n];
            moe_fc1_dot:
                for (int d = 0; d < D; d++) {
#pragma HLS PIPELINE II = 1
                    acc += x[t * D + d] * (int64_t)w1[n * D + d];
                }
                h[n] = rom[requant(acc, mm1[n], (int)s1[n], 8) + 128];
            }
        moe_fc2:
            for (int c = 0; c < D; c++) {
                int64_t acc = b2[c];
            moe_fc2_dot:
                for (int n = 0; n < HM; n++) {
#pragma HLS PIPELINE II = 1
                    acc += h[n] * (int64_t)w2[c * HM + n];
                }
            moe_slots:
                for (int j = 0; j < K; j++) {
                    if (idx[t * K + j] == e) y[t * D + c] += requant(acc * w[t * K + j], mm2[c], (int)s2[c], 32);
                }
            }
        }
    }
moe_out:
    for (int i = 0; i < T * D; i++) {
#pragma HLS PIPELINE II = 1
        out[i] = saturate(y[i], out_bits);
    }
}

// A linear layer on T tokens with each weight row read once per call (edgec::linear per token would stream
// the weights T times): output channel n outermost, its K int8 weights copied on chip, then every token's dot
// product, exactly edgec::linear's integer arithmetic (bias, then requant(acc, m[n], shift[n], BITS); BITS = 0
// keeps the accumulator). x [T, K], y [T, N].
template <int T, int K, int N, int P, bool HAS_BIAS, int BITS>
void linear_tokens(const int64_t x[T * K], const int8_t *w, const int64_t *bias, const int64_t *m,
                   const int64_t *shift, int64_t y[T * N]) {
    int8_t row[K];
#pragma HLS ARRAY_PARTITION variable = row cyclic factor = P
linear_tokens_channels:
    for (int n = 0; n < N; n++) {
    linear_tokens_load:
        for (int k = 0; k < K; k++) {
#pragma HLS PIPELINE II = 1
            row[k] = w[(int64_t)n * K + k];
        }
    linear_tokens_rows:
        for (int t = 0; t < T; t++) {
            int64_t acc = HAS_BIAS ? bias[n] : 0;
        linear_tokens_dot:
            for (int k = 0; k < K; k++) {
#pragma HLS PIPELINE II = 1
#pragma HLS UNROLL factor = P
                acc += x[t * K + k] * (int64_t)row[k];
            }
            y[t * N + n] = BITS ? requant(acc, m[n], (int)shift[n], BITS) : acc;
        }
    }
}

}  // namespace edgec

#endif  // EDGEC_VIT_KERNELS_H
