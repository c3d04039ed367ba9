// Runs one kernel of hls/include/edgec_kernels.h on int64 inputs from a file; writes int64 outputs.
//   kernel_driver KERNEL IN.bin OUT.bin
// Sizes are fixed here and mirrored in tests/test_hls_kernels.py.
#include <stdint.h>
#include <stdio.h>

#include <string>
#include <vector>

#include "driver_io.h"
#include "edgec_kernels.h"

enum { V = 40, D = 64, K = 48, N = 36, E = 24, KT = 4, NS = 16, HD = 90, HK = 12, HM = 3 };
enum { NH = 3, DH = 16, QH = 2, DQK = 8, DV = 12, KB = 10, NI = 600 };

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    read_input(argv[2]);
    const std::string kernel = argv[1];
    if (kernel == "embed") {
        std::vector<int8_t> table(V * D);
        for (auto &t : table) t = (int8_t)next();
        const int64_t *m = take(V), *shift = take(V);
        const int bits = (int)next();
        const int64_t *tokens = take(8);
        for (int i = 0; i < 8; i++) {
            int64_t row[D];
            edgec::embed<V, D>(tokens[i], table.data(), m, shift, bits, row);
            out.insert(out.end(), row, row + D);
        }
    } else if (kernel == "rmsnorm") {
        const int64_t eps = next(), m = next(), shift = next();
        for (int r = 0; r < 8; r++) {
            int64_t y[D];
            edgec::rmsnorm<D>(take(D), eps, m, (int)shift, y);
            out.insert(out.end(), y, y + D);
        }
    } else if (kernel == "linear") {
        const int64_t *x = take(K);
        std::vector<int8_t> w(N * K);
        for (auto &t : w) t = (int8_t)next();
        const int64_t *bias = take(N), *m = take(N), *shift = take(N);
        const int bits = (int)next();
        int64_t y[N];
        if (bits == 8) edgec::linear<K, N, 4, true, 8>(x, w.data(), bias, m, shift, y);
        if (bits == 24) edgec::linear<K, N, 4, true, 24>(x, w.data(), bias, m, shift, y);
        if (bits == 0) edgec::linear<K, N, 4, true, 0>(x, w.data(), bias, nullptr, nullptr, y);
        if (bits == -8) edgec::linear<K, N, 4, false, 8>(x, w.data(), nullptr, m, shift, y);
        out.assign(y, y + N);
    } else if (kernel == "conv1d_step") {
        int8_t state[E][KT - 1];
        for (int e = 0; e < E; e++)
            for (int j = 0; j < KT - 1; j++) state[e][j] = (int8_t)next();
        std::vector<int8_t> taps(E * KT);
        for (auto &t : taps) t = (int8_t)next();
        const int64_t *bias = take(E), *m = take(E), *shift = take(E);
        for (int step = 0; step < 3; step++) {
            int64_t y[E];
            edgec::conv1d_step<E, KT, true>(take(E), state, taps.data(), bias, m, shift, 8, y);
            out.insert(out.end(), y, y + E);
        }
        for (int e = 0; e < E; e++)
            for (int j = 0; j < KT - 1; j++) out.push_back(state[e][j]);
    } else if (kernel == "lut") {
        const int64_t *table = take(256);
        int64_t y[256];
        edgec::lut<256>(take(256), table, y);
        out.assign(y, y + 256);
    } else if (kernel == "scan_step") {
        int32_t h[E][NS];
        for (int e = 0; e < E; e++)
            for (int n = 0; n < NS; n++) h[e][n] = (int32_t)next();
        const int64_t *a_q = take(E * NS);
        const int a_frac = (int)next();
        const int64_t bu_m = next(), bu_shift = next(), y_m = next(), y_shift = next();
        const int64_t *d_m = take(E), *d_shift = take(E);
        const int y_bits = (int)next();
        for (int step = 0; step < 3; step++) {
            const int64_t *u = take(E), *dt = take(E), *b = take(NS), *c = take(NS);
            int64_t y[E];
            edgec::scan_step<E, NS>(u, dt, b, c, h, a_q, a_frac, bu_m, (int)bu_shift, y_m, (int)y_shift, d_m, d_shift,
                                    y_bits, y);
            out.insert(out.end(), y, y + E);
        }
        for (int e = 0; e < E; e++)
            for (int n = 0; n < NS; n++) out.push_back(h[e][n]);
    } else if (kernel == "hadamard") {
        const int64_t *hk = take(HK * HK);
        const int64_t m = next(), shift = next();
        int64_t y[HK << HM];
        edgec::hadamard<HD, HK, HM>(take(HD), hk, m, (int)shift, y);
        out.assign(y, y + (HK << HM));
    } else if (kernel == "mul_add") {
        const int64_t m = next(), shift = next();
        const int64_t *a = take(D), *b = take(D);
        int64_t y[D], z[D];
        edgec::mul<D>(a, b, m, (int)shift, 8, y);
        out.assign(y, y + D);
        edgec::mul<D>(a, b, 0, 0, 0, z);
        out.insert(out.end(), z, z + D);
        edgec::residual_add<D>(a, b, m, (int)shift, 24, y);
        out.insert(out.end(), y, y + D);
    } else if (kernel == "interp_lut") {
        const int in_bits = (int)next();
        const int64_t *knots = take((1 << KB) + 1);
        int64_t y[NI];
        edgec::interp_lut<NI, KB>(take(NI), knots, in_bits, y);
        out.assign(y, y + NI);
    } else if (kernel == "head_layernorm") {
        const int64_t eps = next(), bits = next();
        const int64_t *m = take(NH * DH), *shift = take(NH * DH);
        for (int r = 0; r < 4; r++) {
            int64_t y[NH * DH];
            edgec::head_layernorm<NH, DH>(take(NH * DH), eps, m, shift, (int)bits, y);
            out.insert(out.end(), y, y + NH * DH);
        }
    } else if (kernel == "mlstm_step") {
        edgec::mlstm_constants kc;
        int64_t *fields[] = {&kc.i_m, &kc.i_shift, &kc.kv_m, &kc.kv_shift, &kc.k_m, &kc.k_shift, &kc.guard,
                             &kc.log_inv_qn, &kc.eps, &kc.r_m, &kc.r_shift, &kc.gate_bits, &kc.h_bits};
        for (int64_t *f : fields) *f = next();
        const int64_t *logf = take((1 << KB) + 1);
        std::vector<int32_t> c(QH * DQK * DV), n(QH * DQK), m(QH);
        for (auto &t : c) t = (int32_t)next();
        for (auto &t : n) t = (int32_t)next();
        for (auto &t : m) t = (int32_t)next();
        for (int step = 0; step < 3; step++) {
            const int64_t *q = take(QH * DQK), *k = take(QH * DQK), *v = take(QH * DV), *i = take(QH), *f = take(QH);
            int64_t h[QH * DV];
            edgec::mlstm_step<QH, DQK, DV, KB>(q, k, v, i, f, c.data(), n.data(), m.data(), logf, kc, h);
            out.insert(out.end(), h, h + QH * DV);
        }
        out.insert(out.end(), c.begin(), c.end());
        out.insert(out.end(), n.begin(), n.end());
        out.insert(out.end(), m.begin(), m.end());
    } else {
        return 3;
    }
    write_output(argv[3]);
    return 0;
}
