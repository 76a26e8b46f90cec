// Sums over a row block in a fixed order: SEGMENTS runs of consecutive rows, each added up in row order by one
// thread, then the runs added in order (merge_segments). No atomics: the same bits on every run, whatever the GPU's
// scheduling. Included by kmeans.cu and logistic.cu; hpc/cuda/module.py hashes every .cuh into the cubin cache key.
#pragma once

#define SEGMENTS 32

// The rows [*lo, *hi) of segment s of m rows.
__device__ __forceinline__ void segment_rows(int s, int m, int* lo, int* hi) {
    int per = (m + SEGMENTS - 1) / SEGMENTS;
    *lo = s * per < m ? s * per : m;
    *hi = (s + 1) * per < m ? (s + 1) * per : m;
}

// out[e] = parts[0, e] + parts[1, e] + ... + parts[SEGMENTS - 1, e], in that order, for e < size.
__device__ void merge_segments(const double* __restrict__ parts, double* __restrict__ out, long long size) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < size; e += (long long)gridDim.x * blockDim.x) {
        double acc = 0.0;
        for (int s = 0; s < SEGMENTS; ++s) acc += parts[s * size + e];
        out[e] = acc;
    }
}
