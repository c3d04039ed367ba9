// Differential fuzz driver for hls/include/edgec_kernels.h (tests/test_hls_fuzz.py generates the cases).
//
//   fuzz_driver IN.bin OUT.bin
//
// IN is little-endian int64: a magic word, then groups [variant, count, prefix_len, prefix[prefix_len],
// count records]. A variant is one template instantiation (kernel and shape), listed by the test in the
// generated file fuzz_variants.inc as X-macros; each record is one kernel invocation with its own
// constants and inputs. int8 arrays (weights, taps, conv state) are packed 8 codes per int64 word and
// LUT tables 2 int32 per word, both zero-padded to whole words. OUT receives every output as int64,
// record after record. Test code only (host file I/O, std::vector).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "edgec_kernels.h"

namespace {

const int64_t MAGIC = 0x0102030405060708LL;  // also checks that the host is little-endian
const int GUARD = 8;                          // clear_state: words after the cleared range must survive

std::vector<int64_t> in, out;
size_t pos = 0;

void fail(const char *what) {
    fprintf(stderr, "fuzz_driver: %s at word %zu of %zu\n", what, pos, in.size());
    exit(1);
}

int64_t next() {
    if (pos >= in.size()) fail("input ends inside a record");
    return in[pos++];
}

const int64_t *take(size_t n) {
    if (pos + n > in.size()) fail("input ends inside a record");
    const int64_t *p = in.data() + pos;
    pos += n;
    return p;
}

// int8 codes packed 8 per word (char access to the words is well defined).
const int8_t *take8(size_t n) { return reinterpret_cast<const int8_t *>(take((n + 7) / 8)); }

void put(const int64_t *v, size_t n) { out.insert(out.end(), v, v + n); }

// ---- one invocation per record -------------------------------------------------------------------

// token, bits, m[V], shift[V], table int8[V*D] -> out[D]
template <int V, int D>
void run_embed(const int64_t *) {
    const int64_t token = next();
    const int bits = (int)next();
    const int64_t *m = take(V), *shift = take(V);
    const int8_t *table = take8((size_t)V * D);
    int64_t y[D];
    edgec::embed<V, D>(token, table, m, shift, bits, y);
    put(y, D);
}

// eps, m, shift, x[D] -> out[D]
template <int D>
void run_rmsnorm(const int64_t *) {
    const int64_t eps = next(), m = next(), shift = next();
    int64_t y[D];
    edgec::rmsnorm<D>(take(D), eps, m, (int)shift, y);
    put(y, D);
}

// x[K], w int8[N*K], bias[N] if HAS_BIAS, m[N] and shift[N] if BITS -> out[N]
template <int K, int N, int P, bool HAS_BIAS, int BITS>
void run_linear(const int64_t *) {
    const int64_t *x = take(K);
    const int8_t *w = take8((size_t)N * K);
    const int64_t *bias = HAS_BIAS ? take(N) : nullptr;
    const int64_t *m = BITS ? take(N) : nullptr;
    const int64_t *shift = BITS ? take(N) : nullptr;
    int64_t y[N];
    edgec::linear<K, N, P, HAS_BIAS, BITS>(x, w, bias, m, shift, y);
    put(y, N);
}

// bits, x[E], state int8[E*(KT-1)], taps int8[E*KT], bias[E] if HAS_BIAS, m[E], shift[E]
//   -> y[E], state[E*(KT-1)]
template <int E, int KT, bool HAS_BIAS>
void run_conv1d_step(const int64_t *) {
    const int bits = (int)next();
    const int64_t *x = take(E);
    const int8_t *s = take8((size_t)E * (KT - 1));
    int8_t state[E][KT - 1];
    memcpy(state, s, sizeof(state));
    const int8_t *taps = take8((size_t)E * KT);
    const int64_t *bias = HAS_BIAS ? take(E) : nullptr;
    const int64_t *m = take(E), *shift = take(E);
    int64_t y[E];
    edgec::conv1d_step<E, KT, HAS_BIAS>(x, state, taps, bias, m, shift, bits, y);
    put(y, E);
    for (int e = 0; e < E; e++)
        for (int j = 0; j < KT - 1; j++) out.push_back(state[e][j]);
}

// table int32[256], x[N] -> out[N]
template <int N>
void run_lut(const int64_t *) {
    int32_t packed[256];
    memcpy(packed, take(128), sizeof(packed));
    int64_t table[256];
    for (int i = 0; i < 256; i++) table[i] = packed[i];
    int64_t y[N];
    edgec::lut<N>(take(N), table, y);
    put(y, N);
}

// a_frac, bu_m, bu_shift, y_m, y_shift, y_bits, u[E], dt[E], b[NS], c[NS], h[E*NS], a_q[E*NS], d_m[E],
// d_shift[E] -> y[E], h[E*NS]
template <int E, int NS>
void run_scan_step(const int64_t *) {
    const int a_frac = (int)next();
    const int64_t bu_m = next(), bu_shift = next(), y_m = next(), y_shift = next();
    const int y_bits = (int)next();
    const int64_t *u = take(E), *dt = take(E), *b = take(NS), *c = take(NS), *h0 = take(E * NS);
    const int64_t *a_q = take(E * NS), *d_m = take(E), *d_shift = take(E);
    int32_t h[E][NS];
    for (int e = 0; e < E; e++)
        for (int n = 0; n < NS; n++) h[e][n] = (int32_t)h0[e * NS + n];
    int64_t y[E];
    edgec::scan_step<E, NS>(u, dt, b, c, h, a_q, a_frac, bu_m, (int)bu_shift, y_m, (int)y_shift, d_m, d_shift,
                            y_bits, y);
    put(y, E);
    for (int e = 0; e < E; e++)
        for (int n = 0; n < NS; n++) out.push_back(h[e][n]);
}

// prefix: the base matrix H_K (KH*KH); record: m, shift, x[DIM] -> out[KH << M]
template <int DIM, int KH, int M>
void run_hadamard(const int64_t *hk) {
    const int64_t m = next(), shift = next();
    int64_t y[KH << M];
    edgec::hadamard<DIM, KH, M>(take(DIM), hk, m, (int)shift, y);
    put(y, KH << M);
}

// prefix: in_bits, knots[2^KB + 1]; record: x[N] -> out[N]
template <int N, int KB>
void run_interp_lut(const int64_t *prefix) {
    int64_t y[N];
    edgec::interp_lut<N, KB>(take(N), prefix + 1, (int)prefix[0], y);
    put(y, N);
}

// eps, bits, m[H*DH], shift[H*DH], x[H*DH] -> out[H*DH]
template <int H, int DH>
void run_head_layernorm(const int64_t *) {
    const int64_t eps = next(), bits = next();
    const int64_t *m = take(H * DH), *shift = take(H * DH), *x = take(H * DH);
    int64_t y[H * DH];
    edgec::head_layernorm<H, DH>(x, eps, m, shift, (int)bits, y);
    put(y, H * DH);
}

// prefix: gate_bits, h_bits, logf[2^KB + 1]; record: i_m, i_shift, kv_m, kv_shift, k_m, k_shift, guard,
// log_inv_qn, eps, r_m, r_shift, q[H*DQK], k[H*DQK], v[H*DV], i[H], f[H], C[H*DQK*DV], n[H*DQK], m[H]
//   -> h[H*DV], C, n, m
template <int H, int DQK, int DV, int KB>
void run_mlstm_step(const int64_t *prefix) {
    edgec::mlstm_constants kc;
    int64_t *fields[] = {&kc.i_m, &kc.i_shift, &kc.kv_m, &kc.kv_shift, &kc.k_m, &kc.k_shift, &kc.guard,
                         &kc.log_inv_qn, &kc.eps, &kc.r_m, &kc.r_shift};
    for (int64_t *f : fields) *f = next();
    kc.gate_bits = prefix[0];
    kc.h_bits = prefix[1];
    const int64_t *q = take(H * DQK), *k = take(H * DQK), *v = take(H * DV), *i = take(H), *f = take(H);
    const int64_t *c0 = take(H * DQK * DV), *n0 = take(H * DQK), *m0 = take(H);
    static int32_t c[H * DQK * DV];
    int32_t n[H * DQK], m[H];
    for (int j = 0; j < H * DQK * DV; j++) c[j] = (int32_t)c0[j];
    for (int j = 0; j < H * DQK; j++) n[j] = (int32_t)n0[j];
    for (int j = 0; j < H; j++) m[j] = (int32_t)m0[j];
    int64_t h[H * DV];
    edgec::mlstm_step<H, DQK, DV, KB>(q, k, v, i, f, c, n, m, prefix + 2, kc, h);
    put(h, H * DV);
    out.insert(out.end(), c, c + H * DQK * DV);
    out.insert(out.end(), n, n + H * DQK);
    out.insert(out.end(), m, m + H);
}

// m, shift, bits, a[N], b[N] -> out[N] (bits = 0: the wide product)
template <int N>
void run_mul(const int64_t *) {
    const int64_t m = next(), shift = next(), bits = next();
    const int64_t *a = take(N), *b = take(N);
    int64_t y[N];
    edgec::mul<N>(a, b, m, (int)shift, (int)bits, y);
    put(y, N);
}

// m, shift, bits, skip[D], b[D] -> out[D]
template <int D>
void run_residual_add(const int64_t *) {
    const int64_t m = next(), shift = next(), bits = next();
    const int64_t *skip = take(D), *b = take(D);
    int64_t y[D];
    edgec::residual_add<D>(skip, b, m, (int)shift, (int)bits, y);
    put(y, D);
}

// start, src[W] -> dst[N] = src[start, start + N)
template <int N, int W>
void run_slice(const int64_t *) {
    const int64_t start = next();
    const int64_t *src = take(W);
    int64_t y[N];
    edgec::slice<N>(src + start, y);
    put(y, N);
}

// n, values[NMAX + GUARD] (in T's range) -> the buffer after clear_state(buf, n * sizeof(T))
template <typename T, int NMAX>
void run_clear_state(const int64_t *) {
    const int64_t n = next();
    const int64_t *v = take(NMAX + GUARD);
    T buf[NMAX + GUARD];
    for (int i = 0; i < NMAX + GUARD; i++) buf[i] = (T)v[i];
    edgec::clear_state(buf, (unsigned long)n * sizeof(T));
    for (int i = 0; i < NMAX + GUARD; i++) out.push_back(buf[i]);
}

typedef void (*runner)(const int64_t *prefix);

// id -> runner, from the X-macro list the test generates.
runner find(int64_t id) {
    switch (id) {
#define EMBED(id, V, D) \
    case id: return run_embed<V, D>;
#define RMSNORM(id, D) \
    case id: return run_rmsnorm<D>;
#define LINEAR(id, K, N, P, HAS_BIAS, BITS) \
    case id: return run_linear<K, N, P, HAS_BIAS, BITS>;
#define CONV1D_STEP(id, E, KT, HAS_BIAS) \
    case id: return run_conv1d_step<E, KT, HAS_BIAS>;
#define LUT(id, N) \
    case id: return run_lut<N>;
#define SCAN_STEP(id, E, NS) \
    case id: return run_scan_step<E, NS>;
#define HADAMARD(id, DIM, KH, M) \
    case id: return run_hadamard<DIM, KH, M>;
#define INTERP_LUT(id, N, KB) \
    case id: return run_interp_lut<N, KB>;
#define HEAD_LAYERNORM(id, H, DH) \
    case id: return run_head_layernorm<H, DH>;
#define MLSTM_STEP(id, H, DQK, DV, KB) \
    case id: return run_mlstm_step<H, DQK, DV, KB>;
#define MUL(id, N) \
    case id: return run_mul<N>;
#define RESIDUAL_ADD(id, D) \
    case id: return run_residual_add<D>;
#define SLICE(id, N, W) \
    case id: return run_slice<N, W>;
#define CLEAR_STATE(id, T, NMAX) \
    case id: return run_clear_state<T, NMAX>;
#include "fuzz_variants.inc"
        default: return nullptr;
    }
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s IN OUT\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) fail("cannot open the input");
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    in.resize((size_t)size / 8);
    if (size % 8 || fread(in.data(), 8, in.size(), f) != in.size()) fail("cannot read the input as int64 words");
    fclose(f);
    if (next() != MAGIC) fail("bad magic word (not little-endian?)");
    while (pos < in.size()) {
        const int64_t id = next(), count = next(), prefix_len = next();
        const int64_t *prefix = take((size_t)prefix_len);
        const runner run = find(id);
        if (!run) fail("unknown variant");
        for (int64_t i = 0; i < count; i++) run(prefix);
    }
    FILE *o = fopen(argv[2], "wb");
    if (!o || fwrite(out.data(), 8, out.size(), o) != out.size() || fclose(o) != 0) fail("cannot write the output");
    return 0;
}
