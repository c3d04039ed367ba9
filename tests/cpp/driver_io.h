// Input and output of a kernel test driver (one translation unit): int64 words read from IN.bin and consumed in
// order by next() / take(), the outputs gathered in `out` and written to OUT.bin, little-endian as numpy's "<i8".
#ifndef EDGEC_TEST_DRIVER_IO_H
#define EDGEC_TEST_DRIVER_IO_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <vector>

static std::vector<int64_t> in, out;
static size_t pos = 0;

static void fail(const char *what) {
    fprintf(stderr, "kernel driver: %s at word %zu of %zu\n", what, pos, in.size());
    exit(1);
}

static int64_t next() {
    if (pos >= in.size()) fail("input ends inside a record");
    return in[pos++];
}

static const int64_t *take(size_t n) {
    if (pos + n > in.size()) fail("input ends inside a record");
    const int64_t *p = in.data() + pos;
    pos += n;
    return p;
}

static void read_input(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail("cannot open the input");
    int64_t v;
    while (fread(&v, 8, 1, f) == 1) in.push_back(v);
    fclose(f);
}

static void write_output(const char *path) {
    FILE *o = fopen(path, "wb");
    if (!o) fail("cannot open the output");
    if (fwrite(out.data(), 8, out.size(), o) != out.size()) fail("short write");
    fclose(o);
}

#endif
