// Runs one kernel of hls/include/edgec_vit_kernels.h on int64 records from a file; writes int64 outputs.
//   vit_kernel_driver VARIANT IN.bin OUT.bin
// IN is little-endian int64: a record count, then that many records of the variant (one kernel invocation
// each, with its own constants and inputs; int8 weights one code per word). OUT receives every output,
// record after record. A variant is a kernel at fixed template sizes (the table in main, mirrored in
// tests/test_hls_vit_kernels.py); with -DEDGEC_VIT_FUZZ the fuzz test's extra shapes are compiled in too.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <map>
#include <string>
#include <vector>

#include "driver_io.h"
#include "edgec_vit_kernels.h"

namespace {

std::vector<int8_t> take8(size_t n) {
    const int64_t *p = take(n);
    return std::vector<int8_t>(p, p + n);
}

void put(const int64_t *v, size_t n) { out.insert(out.end(), v, v + n); }

// img[IH*IW*C] -> patches[N*C*P*P]
template <int IH, int IW, int C, int P>
void run_patchify() {
    std::vector<int64_t> y((IH / P) * (IW / P) * C * P * P);
    edgec::patchify<IH, IW, C, P>(take(IH * IW * C), y.data());
    put(y.data(), y.size());
}

// bits, img[IH*IW*C], w[D*C*P*P], bias[D] if HAS_BIAS, m[D], shift[D] -> out[N*D]
template <int IH, int IW, int C, int P, int D, bool HAS_BIAS>
void run_patch_embed() {
    const int bits = (int)next();
    const int64_t *img = take(IH * IW * C);
    const std::vector<int8_t> w = take8((size_t)D * C * P * P);
    const int64_t *bias = HAS_BIAS ? take(D) : nullptr;
    const int64_t *m = take(D), *shift = take(D);
    std::vector<int64_t> y((IH / P) * (IW / P) * D);
    edgec::patch_embed<IH, IW, C, P, D, HAS_BIAS>(img, w.data(), bias, m, shift, bits, y.data());
    put(y.data(), y.size());
}

// bits, x[(T-1)*D], table[T*D] -> out[T*D]
template <int T, int D>
void run_cls_pos() {
    const int bits = (int)next();
    const int64_t *x = take((T - 1) * D), *table = take(T * D);
    int64_t y[T * D];
    edgec::cls_pos<T, D>(x, table, bits, y);
    put(y, T * D);
}

// x[T*D] -> out[D]
template <int T, int D>
void run_cls_pool() {
    int64_t y[D];
    edgec::cls_pool<T, D>(take(T * D), y);
    put(y, D);
}

// eps, out_bits, m[DM], shift[DM], bias[DM], x[R*D] -> out[R*D] (DM = D if AFFINE else 1)
template <int R, int D, bool AFFINE>
void run_layernorm() {
    const int DM = AFFINE ? D : 1;
    const int64_t eps = next();
    const int out_bits = (int)next();
    const int64_t *m = take(DM), *shift = take(DM), *bias = take(DM);
    int64_t y[R * D];
    edgec::layernorm_rows<R, D, AFFINE>(take(R * D), eps, m, shift, bias, out_bits, y);
    put(y, R * D);
}

// m, shift, bits, q[T*H*DH], k[T*H*DH] -> scores[H*T*T]
template <int T, int H, int DH>
void run_attn_scores() {
    const int64_t m = next();
    const int shift = (int)next(), bits = (int)next();
    const int64_t *q = take(T * H * DH), *k = take(T * H * DH);
    int64_t y[H * T * T];
    edgec::attn_scores<T, H, DH>(q, k, m, shift, bits, y);
    put(y, H * T * T);
}

// m, shift, bits, probs[H*T*T], v[T*H*DH] -> context[T*H*DH]
template <int T, int H, int DH>
void run_attn_context() {
    const int64_t m = next();
    const int shift = (int)next(), bits = (int)next();
    const int64_t *probs = take(H * T * T), *v = take(T * H * DH);
    int64_t y[T * H * DH];
    edgec::attn_context<T, H, DH>(probs, v, m, shift, bits, y);
    put(y, T * H * DH);
}

// exp_bits, out_bits, table[256], q[R*N] -> p[R*N]
template <int R, int N>
void run_softmax_table() {
    const int exp_bits = (int)next(), out_bits = (int)next();
    const int64_t *table = take(256);
    int64_t y[R * N];
    edgec::softmax_table_rows<R, N>(take(R * N), table, exp_bits, out_bits, y);
    put(y, R * N);
}

// m, frac, out_bits, q[R*N] -> p[R*N]
template <int R, int N>
void run_softmax_exp2() {
    const int64_t m = next();
    const int frac = (int)next(), out_bits = (int)next();
    int64_t y[R * N];
    edgec::softmax_exp2_rows<R, N>(take(R * N), m, frac, out_bits, y);
    put(y, R * N);
}

// scores[R*E], values[R*E] -> top_values[R*K], top_idx[R*K]
template <int R, int E, int K>
void run_topk() {
    const int64_t *scores = take(R * E), *values = take(R * E);
    int64_t v[R * K], idx[R * K];
    edgec::topk_rows<R, E, K>(scores, values, v, idx);
    put(v, R * K);
    put(idx, R * K);
}

// bits, x[T*D], w[D*E], bias[E] if HAS_BIAS, m[E], shift[E] -> logits[T*E]
template <int T, int D, int E, bool HAS_BIAS>
void run_route_logits() {
    const int bits = (int)next();
    const int64_t *x = take(T * D);
    const std::vector<int8_t> w = take8(D * E);
    const int64_t *bias = HAS_BIAS ? take(E) : nullptr;
    const int64_t *m = take(E), *shift = take(E);
    int64_t y[T * E];
    edgec::route_logits<T, D, E, HAS_BIAS>(x, w.data(), bias, m, shift, bits, y);
    put(y, T * E);
}

// out_bits, x[T*D], w[T*K], idx[T*K], fc1_w[E*HM*D], fc1_b[E*HM], m1[E*HM], sh1[E*HM], luts[E*256],
// fc2_w[E*D*HM], fc2_b[E*D], m2[E*D], sh2[E*D] -> out[T*D]
template <int T, int D, int HM, int E, int K>
void run_moe() {
    const int out_bits = (int)next();
    const int64_t *x = take(T * D), *w = take(T * K), *idx = take(T * K);
    const std::vector<int8_t> fc1_w = take8(E * HM * D);
    const int64_t *fc1_b = take(E * HM), *m1 = take(E * HM), *sh1 = take(E * HM), *luts = take(E * 256);
    const std::vector<int8_t> fc2_w = take8(E * D * HM);
    const int64_t *fc2_b = take(E * D), *m2 = take(E * D), *sh2 = take(E * D);
    int64_t y[T * D];
    edgec::moe<T, D, HM, E, K>(x, w, idx, fc1_w.data(), fc1_b, m1, sh1, luts, fc2_w.data(), fc2_b, m2, sh2,
                                out_bits, y);
    put(y, T * D);
}

// table[256], x[N] -> out[N]: a GELU through edgec_kernels.h's lut
template <int N>
void run_gelu() {
    const int64_t *table = take(256);
    int64_t y[N];
    edgec::lut<N>(take(N), table, y);
    put(y, N);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    // Default sizes (tests/test_hls_vit_kernels.py): image 8x12x3, patch 4 (6 patches), D 10; T 7 tokens;
    // attention 3 heads of 4; router over 8 experts, top-2; MoE T 7, D 12, HM 10, E 4, K 2.
    const std::map<std::string, void (*)()> variants = {
        {"patchify", run_patchify<8, 12, 3, 4>},
        {"patch_embed", run_patch_embed<8, 12, 3, 4, 10, true>},
        {"patch_embed_nobias", run_patch_embed<8, 12, 3, 4, 10, false>},
        {"cls_pos", run_cls_pos<7, 10>},
        {"cls_pool", run_cls_pool<7, 10>},
        {"layernorm", run_layernorm<6, 24, true>},
        {"layernorm_folded", run_layernorm<6, 24, false>},
        {"attn_scores", run_attn_scores<7, 3, 4>},
        {"attn_context", run_attn_context<7, 3, 4>},
        {"softmax_table", run_softmax_table<6, 7>},
        {"softmax_exp2", run_softmax_exp2<6, 8>},
        {"topk", run_topk<6, 8, 2>},
        {"route_logits", run_route_logits<7, 12, 8, false>},
        {"route_logits_bias", run_route_logits<7, 12, 8, true>},
        {"moe", run_moe<7, 12, 10, 4, 2>},
        {"gelu", run_gelu<256>},
#ifdef EDGEC_VIT_FUZZ
        // extra shapes of the slow fuzz test: single elements, k = width, longer rows
        {"patchify_1", run_patchify<2, 2, 1, 2>},
        {"patch_embed_1", run_patch_embed<4, 2, 2, 2, 3, true>},
        {"cls_pos_1", run_cls_pos<2, 1>},
        {"layernorm_d1", run_layernorm<2, 1, true>},
        {"layernorm_d3", run_layernorm<3, 3, false>},
        {"layernorm_d64", run_layernorm<2, 64, true>},
        {"attn_scores_1", run_attn_scores<1, 1, 1>},
        {"attn_scores_t17", run_attn_scores<17, 2, 8>},
        {"attn_context_1", run_attn_context<1, 1, 1>},
        {"attn_context_t17", run_attn_context<17, 2, 8>},
        {"softmax_table_1", run_softmax_table<3, 1>},
        {"softmax_table_197", run_softmax_table<2, 197>},
        {"softmax_exp2_1", run_softmax_exp2<3, 1>},
        {"softmax_exp2_16", run_softmax_exp2<4, 16>},
        {"topk_1", run_topk<3, 1, 1>},
        {"topk_4_4", run_topk<4, 4, 4>},
        {"topk_16_2", run_topk<4, 16, 2>},
        {"route_logits_1", run_route_logits<1, 1, 1, true>},
        {"moe_1", run_moe<3, 4, 3, 1, 1>},
        {"moe_3_3", run_moe<5, 4, 3, 3, 3>},
        {"moe_8_2", run_moe<9, 8, 16, 8, 2>},
#endif
    };
    const auto found = variants.find(argv[1]);
    if (found == variants.end()) {
        fprintf(stderr, "vit_kernel_driver: unknown variant %s\n", argv[1]);
        return 3;
    }
    read_input(argv[2]);
    const int64_t count = next();
    for (int64_t i = 0; i < count; i++) found->second();
    if (pos != in.size()) fail("input longer than its records");
    write_output(argv[3]);
    return 0;
}
