// edgec testbench of an image model: runs the top function on each (image, task) pair of two files.
//
//   tb_edgec_image WEIGHTS.bin IMAGES.bin TASKS.bin LOGITS_OUT.bin [--golden GOLDEN.bin] [--trace TRACE_OUT.bin]
//
// Exit status: 0 on success (and, with --golden, every logit equal to GOLDEN.bin), 1 otherwise, so
// Vitis csim_design / cosim_design report a mismatch as a failure.
//
// WEIGHTS.bin: "EDGECW1\0", uint64 n8, uint64 n64, n8 int8 values, zero padding to 8 bytes, n64 int64.
// IMAGES.bin:  uint8 pixels, EDGEC_PIXELS per image (H x W x C, channels last), no header.
// TASKS.bin:   int64 task index per call (see EDGEC_TASKS in edgec_top.h), one per image.
// LOGITS_OUT.bin: per call, EDGEC_CLASSES int64 logit codes (a task with fewer classes pads with 0).
// TRACE_OUT.bin (optional): per call and shared node output: uint32 name length, name bytes,
//   uint64 count, count int64 values.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <vector>

#include "edgec_top.h"

static FILE *trace_out = 0;

static void write_trace(const char *name, const int64_t *values, int n) {
    const uint32_t len = (uint32_t)strlen(name);
    const uint64_t count = (uint64_t)n;
    fwrite(&len, sizeof len, 1, trace_out);
    fwrite(name, 1, len, trace_out);
    fwrite(&count, sizeof count, 1, trace_out);
    fwrite(values, sizeof(int64_t), (size_t)n, trace_out);
}

static bool read_file(const char *path, std::vector<char> &data) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    data.resize((size_t)size);
    const bool ok = size == 0 || fread(data.data(), 1, (size_t)size, f) == (size_t)size;
    fclose(f);
    return ok;
}

int main(int argc, char **argv) {
    const char *golden_path = 0, *trace_path = 0;
    for (int i = 5; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--golden") == 0) golden_path = argv[i + 1];
        else if (strcmp(argv[i], "--trace") == 0) trace_path = argv[i + 1];
        else argc = 0;  // unknown option: fall through to the usage line
    }
    if (argc < 5 || argc % 2 == 0) {
        fprintf(stderr, "usage: %s WEIGHTS.bin IMAGES.bin TASKS.bin LOGITS_OUT.bin [--golden GOLDEN.bin] "
                "[--trace TRACE.bin]\n", argv[0]);
        return 2;
    }
    std::vector<char> weights, images, tasks;
    if (!read_file(argv[1], weights) || weights.size() < 24 || memcmp(weights.data(), "EDGECW1\0", 8) != 0) {
        fprintf(stderr, "tb_edgec_image: %s is not an edgec weights file\n", argv[1]);
        return 1;
    }
    uint64_t n8 = 0, n64 = 0;
    memcpy(&n8, weights.data() + 8, 8);
    memcpy(&n64, weights.data() + 16, 8);
    const uint64_t start64 = 24 + n8 + (8 - n8 % 8) % 8;
    if (n8 != EDGEC_W8_SIZE || n64 != EDGEC_W64_SIZE || weights.size() != start64 + 8 * n64) {
        fprintf(stderr, "tb_edgec_image: %s does not match this design (%llu/%llu values, expected %d/%d)\n",
                argv[1], (unsigned long long)n8, (unsigned long long)n64, EDGEC_W8_SIZE, EDGEC_W64_SIZE);
        return 1;
    }
    std::vector<int8_t> w8(n8 ? n8 : 1);
    std::vector<int64_t> w64(n64 ? n64 : 1);
    memcpy(w8.data(), weights.data() + 24, n8);
    memcpy(w64.data(), weights.data() + start64, 8 * n64);
    if (!read_file(argv[2], images) || images.size() % EDGEC_PIXELS != 0) {
        fprintf(stderr, "tb_edgec_image: %s is not a file of %d-pixel uint8 images\n", argv[2], EDGEC_PIXELS);
        return 1;
    }
    const size_t count = images.size() / EDGEC_PIXELS;
    if (!read_file(argv[3], tasks) || tasks.size() != 8 * count) {
        fprintf(stderr, "tb_edgec_image: %s does not hold one int64 task per image (%zu)\n", argv[3], count);
        return 1;
    }
    FILE *out = fopen(argv[4], "wb");
    if (!out) {
        fprintf(stderr, "tb_edgec_image: cannot write %s\n", argv[4]);
        return 1;
    }
    if (trace_path) {
        trace_out = fopen(trace_path, "wb");
        if (!trace_out) {
            fprintf(stderr, "tb_edgec_image: cannot write %s\n", trace_path);
            return 1;
        }
        edgec_trace_hook = write_trace;
    }
    std::vector<char> golden;
    if (golden_path && (!read_file(golden_path, golden) || golden.size() != count * EDGEC_CLASSES * 8)) {
        fprintf(stderr, "tb_edgec_image: %s does not hold %zu x %d int64 logits\n", golden_path, count,
                EDGEC_CLASSES);
        return 1;
    }
    std::vector<int64_t> pixels(EDGEC_PIXELS), logits(EDGEC_CLASSES);
    size_t mismatches = 0;
    for (size_t n = 0; n < count; n++) {
        int64_t task;
        memcpy(&task, tasks.data() + 8 * n, 8);
        if (task < 0 || task >= EDGEC_TASKS) {
            fprintf(stderr, "tb_edgec_image: task %lld of call %zu is not one of the %d tasks\n", (long long)task, n,
                    EDGEC_TASKS);
            return 1;
        }
        for (int i = 0; i < EDGEC_PIXELS; i++) pixels[i] = (uint8_t)images[n * EDGEC_PIXELS + i];
        edgec_image(pixels.data(), (int)task, w8.data(), w64.data(), logits.data());
        fwrite(logits.data(), sizeof(int64_t), logits.size(), out);
        for (int v = 0; golden_path && v < EDGEC_CLASSES; v++) {
            int64_t want;
            memcpy(&want, golden.data() + 8 * (n * EDGEC_CLASSES + v), 8);
            mismatches += want != logits[v];
        }
    }
    fclose(out);
    if (trace_out) fclose(trace_out);
    if (golden_path) {
        printf("tb_edgec_image: %zu calls, %zu of %zu logits differ from %s\n", count, mismatches,
               count * EDGEC_CLASSES, golden_path);
        return mismatches ? 1 : 0;
    }
    printf("tb_edgec_image: %zu calls\n", count);
    return 0;
}
