// Runs one Mamba-2 kernel of hls/include/edgec_kernels.h (ssd_step, rmsnorm_groups) on int64 inputs from a file;
// writes int64 outputs.   mamba2_kernel_driver KERNEL IN.bin OUT.bin
// Sizes are fixed here and mirrored in tests/test_fpga_mamba2.py.
#include <stdint.h>
#include <stdio.h>

#include <string>
#include <vector>

#include "driver_io.h"
#include "edgec_kernels.h"

enum { SH = 6, SG = 2, SP = 5, SN = 8, STEPS = 4, ND = 64, NG = 4, NROWS = 6 };

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    read_input(argv[2]);
    const std::string kernel = argv[1];
    if (kernel == "ssd_step") {
        std::vector<int32_t> h(SH * SP * SN);
        for (auto &t : h) t = (int32_t)next();
        const int64_t *dt_q = take(SH * 256), *decay = take(SH * 256), *bu_m = take(SH), *bu_shift = take(SH);
        const int64_t y_m = next(), y_shift = next();
        const int64_t *d_m = take(SH), *d_shift = take(SH);
        const int y_bits = (int)next();
        for (int step = 0; step < STEPS; step++) {
            const int64_t *x = take(SH * SP), *dt = take(SH), *b = take(SG * SN), *c = take(SG * SN);
            int64_t y[SH * SP];
            edgec::ssd_step<SH, SG, SP, SN>(x, dt, b, c, h.data(), dt_q, decay, bu_m, bu_shift, y_m, (int)y_shift,
                                            d_m, d_shift, y_bits, y);
            out.insert(out.end(), y, y + SH * SP);
        }
        out.insert(out.end(), h.begin(), h.end());
    } else if (kernel == "rmsnorm_groups") {
        const int64_t eps = next(), m = next(), shift = next(), norm_bits = next(), bits = next(), wide = next();
        for (int r = 0; r < NROWS; r++) {
            int64_t y[ND];
            if (wide) {
                edgec::rmsnorm_groups<ND, NG, true>(take(ND), eps, m, (int)shift, (int)norm_bits, (int)bits, y);
            } else {
                edgec::rmsnorm_groups<ND, NG, false>(take(ND), eps, m, (int)shift, 0, (int)bits, y);
            }
            out.insert(out.end(), y, y + ND);
        }
    } else {
        return 3;
    }
    write_output(argv[3]);
    return 0;
}
