// Prefix-sum GPU twins of hpc.kernels.scan (inclusive and exclusive) over a C-contiguous array in C order.
// Partial sums are carried in double for float32 and float64 alike (as hpc.kernels does), and each output is
// rounded once. Three phases: tile_sums writes each tile's total; the host scans the totals (exclusive, with the
// same kernels, recursively); scan_tiles scans each tile in double from its offset. x is read twice, out written
// once. 256 threads per block, ITEMS consecutive elements per thread. Launched by hpc/cuda/twins.py.

#include "common.cuh"
#define ITEMS 8
#define TILE (BLOCK * ITEMS)

template <typename T>
__device__ void tile_sums(const T* __restrict__ x, double* __restrict__ totals, long long n) {
    long long base = (long long)blockIdx.x * TILE + (long long)threadIdx.x * ITEMS;
    double run = 0.0;
    for (int k = 0; k < ITEMS; ++k)
        if (base + k < n) run += (double)x[base + k];
    run = block_sum(run);
    if (threadIdx.x == 0) totals[blockIdx.x] = run;
}

template <typename T>
__device__ void scan_tiles(const T* __restrict__ x, T* __restrict__ out, const double* __restrict__ offsets,
                           long long n, int exclusive) {
    __shared__ double s[BLOCK];
    long long base = (long long)blockIdx.x * TILE + (long long)threadIdx.x * ITEMS;
    double v[ITEMS];
    double run = 0.0;
    for (int k = 0; k < ITEMS; ++k) {
        double e = base + k < n ? (double)x[base + k] : 0.0;
        v[k] = exclusive ? run : run + e;
        run += e;
    }
    // Hillis-Steele inclusive scan of the per-thread totals
    s[threadIdx.x] = run;
    __syncthreads();
    for (int off = 1; off < BLOCK; off <<= 1) {
        double add = threadIdx.x >= off ? s[threadIdx.x - off] : 0.0;
        __syncthreads();
        s[threadIdx.x] += add;
        __syncthreads();
    }
    // this thread's start: the tile's offset plus the totals of the threads before it (no subtraction)
    double before = (offsets != nullptr ? offsets[blockIdx.x] : 0.0) + (threadIdx.x > 0 ? s[threadIdx.x - 1] : 0.0);
    for (int k = 0; k < ITEMS; ++k)
        if (base + k < n) out[base + k] = (T)(before + v[k]);
}

extern "C" {
__global__ void tile_sums_f32(const float* x, double* totals, long long n) { tile_sums(x, totals, n); }
__global__ void tile_sums_f64(const double* x, double* totals, long long n) { tile_sums(x, totals, n); }
__global__ void scan_tiles_f32(const float* x, float* out, const double* offsets, long long n, int exclusive) {
    scan_tiles(x, out, offsets, n, exclusive);
}
__global__ void scan_tiles_f64(const double* x, double* out, const double* offsets, long long n, int exclusive) {
    scan_tiles(x, out, offsets, n, exclusive);
}
}
