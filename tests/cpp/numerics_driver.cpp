// Test driver for hls/include/edgec_numerics.h (tests/test_hls_numerics.py compiles and runs it).
//
//   numerics_driver OP IN OUT
//
// IN is a flat array of little-endian int64 values grouped in records; OUT receives one int64 per
// record (little-endian). Records per OP:
//   rshift_round  x, shift              -> rshift_round(x, shift)
//   saturate      x, bits               -> saturate(x, bits)
//   requant       x, m, shift, bits     -> requant(x, m, shift, bits)
//   isqrt         x                     -> isqrt(x)
//   exp2_fixed    t, frac_bits          -> exp2_fixed(t, frac_bits)
//   exp2_int      e, frac_bits, cap     -> exp2_int(e, frac_bits, cap)
//   bit_length    x                     -> bit_length(x)
//   reciprocal    x                     -> mantissa * 128 + shift of reciprocal_fixed(x)
//   lut           256 table entries (int32 range) first, then one int8 code per record
//                                       -> lut_lookup(table, code)
//   interp        in_bits, knot_bits and the 2^knot_bits + 1 knots first, then one code per record
//                                       -> interp_lookup(knots, code, in_bits, knot_bits)
// Test code only (not synthesized): it uses the host's file I/O and std::vector freely.

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <string>
#include <vector>

#include "edgec_numerics.h"

namespace {

bool read_all(const char* path, std::vector<int64_t>* out) {
    FILE* f = fopen(path, "rb");
    if (!f) return false;
    std::vector<unsigned char> bytes;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
    fclose(f);
    if (bytes.size() % 8 != 0) return false;
    out->resize(bytes.size() / 8);
    for (size_t i = 0; i < out->size(); ++i) {
        uint64_t u = 0;
        for (int b = 7; b >= 0; --b) u = (u << 8) | bytes[i * 8 + b];  // little-endian on any host
        (*out)[i] = static_cast<int64_t>(u);
    }
    return true;
}

bool write_all(const char* path, const std::vector<int64_t>& values) {
    std::vector<unsigned char> bytes(values.size() * 8);
    for (size_t i = 0; i < values.size(); ++i) {
        uint64_t u = static_cast<uint64_t>(values[i]);
        for (int b = 0; b < 8; ++b) bytes[i * 8 + b] = static_cast<unsigned char>(u >> (8 * b));
    }
    FILE* f = fopen(path, "wb");
    if (!f) return false;
    const bool ok = fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    return fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s OP IN OUT\n", argv[0]);
        return 2;
    }
    const std::string op = argv[1];
    std::vector<int64_t> in;
    if (!read_all(argv[2], &in)) {
        fprintf(stderr, "cannot read %s as int64 records\n", argv[2]);
        return 1;
    }
    std::vector<int64_t> out;
    const int64_t* v = in.data();
    const size_t n = in.size();
    if (op == "rshift_round" && n % 2 == 0) {
        for (size_t i = 0; i < n; i += 2) out.push_back(edgec::rshift_round(v[i], static_cast<int>(v[i + 1])));
    } else if (op == "saturate" && n % 2 == 0) {
        for (size_t i = 0; i < n; i += 2) out.push_back(edgec::saturate(v[i], static_cast<int>(v[i + 1])));
    } else if (op == "requant" && n % 4 == 0) {
        for (size_t i = 0; i < n; i += 4)
            out.push_back(edgec::requant(v[i], v[i + 1], static_cast<int>(v[i + 2]), static_cast<int>(v[i + 3])));
    } else if (op == "isqrt") {
        for (size_t i = 0; i < n; ++i) out.push_back(edgec::isqrt(v[i]));
    } else if (op == "exp2_fixed" && n % 2 == 0) {
        for (size_t i = 0; i < n; i += 2) out.push_back(edgec::exp2_fixed(v[i], static_cast<int>(v[i + 1])));
    } else if (op == "exp2_int" && n % 3 == 0) {
        for (size_t i = 0; i < n; i += 3)
            out.push_back(edgec::exp2_int(v[i], static_cast<int>(v[i + 1]), static_cast<int>(v[i + 2])));
    } else if (op == "interp" && n >= 2 && n >= 2 + (static_cast<size_t>(1) << v[1]) + 1) {
        const int in_bits = static_cast<int>(v[0]), knot_bits = static_cast<int>(v[1]);
        const size_t count = (static_cast<size_t>(1) << knot_bits) + 1;
        for (size_t i = 2 + count; i < n; ++i) out.push_back(edgec::interp_lookup(v + 2, v[i], in_bits, knot_bits));
    } else if (op == "bit_length") {
        for (size_t i = 0; i < n; ++i) out.push_back(edgec::bit_length(v[i]));
    } else if (op == "reciprocal") {
        for (size_t i = 0; i < n; ++i) {
            int shift = 0;
            const int64_t y = edgec::reciprocal_fixed(v[i], &shift);
            out.push_back(y * 128 + shift);  // y <= 2^31 and shift < 128: one record per input
        }
    } else if (op == "lut" && n >= 256) {
        // Exercise the template with an ap_int table as the HLS kernels store them.
        ap_int<32> table[256];
        for (int i = 0; i < 256; ++i) table[i] = static_cast<int32_t>(v[i]);
        for (size_t i = 256; i < n; ++i) {
            const edgec::code_t q = static_cast<int8_t>(v[i]);
            out.push_back(static_cast<int64_t>(edgec::lut_lookup(table, q).to_int64()));
        }
    } else {
        fprintf(stderr, "unknown op %s or malformed input (%zu values)\n", op.c_str(), n);
        return 2;
    }
    if (!write_all(argv[3], out)) {
        fprintf(stderr, "cannot write %s\n", argv[3]);
        return 1;
    }
    return 0;
}
