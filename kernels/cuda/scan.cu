// Prefix-sum GPU twins of hpc.kernels.scan (inclusive and exclusive) over a C-contiguous array in C order.
// Three phases: scan_tiles scans each tile of TILE elements and writes the tile's total; the host scans the totals
// with the same kernel (recursively); add_offsets adds the total of all earlier tiles to each tile.
// 256 threads per block, ITEMS consecutive elements per thread. Launched by hpc/cuda/twins.py.

#include "common.cuh"
#define ITEMS 8
#define TILE (BLOCK * ITEMS)

template <typename T>
__device__ void scan_tiles(const T* __restrict__ x, T* __restrict__ out, T* __restrict__ totals, long long n,
                           int exclusive) {
    __shared__ T s[BLOCK];
    long long base = (long long)blockIdx.x * TILE + (long long)threadIdx.x * ITEMS;
    T v[ITEMS];
    T run = 0;
    for (int k = 0; k < ITEMS; ++k) {
        T e = base + k < n ? x[base + k] : (T)0;
        v[k] = exclusive ? run : run + e;
        run += e;
    }
    // Hillis-Steele inclusive scan of the per-thread totals
    s[threadIdx.x] = run;
    __syncthreads();
    for (int off = 1; off < BLOCK; off <<= 1) {
        T add = threadIdx.x >= off ? s[threadIdx.x - off] : (T)0;
        __syncthreads();
        s[threadIdx.x] += add;
        __syncthreads();
    }
    T before = s[threadIdx.x] - run;  // exclusive prefix of this thread
    for (int k = 0; k < ITEMS; ++k)
        if (base + k < n) out[base + k] = v[k] + before;
    if (threadIdx.x == BLOCK - 1 && totals != nullptr) totals[blockIdx.x] = s[BLOCK - 1];
}

template <typename T>
__device__ void add_offsets(T* __restrict__ out, const T* __restrict__ scanned_totals, long long n) {
    if (blockIdx.x == 0) return;
    T add = scanned_totals[blockIdx.x - 1];
    long long lo = (long long)blockIdx.x * TILE;
    for (long long i = lo + threadIdx.x; i < lo + TILE && i < n; i += BLOCK) out[i] += add;
}

extern "C" {
__global__ void scan_tiles_f32(const float* x, float* out, float* totals, long long n, int exclusive) {
    scan_tiles(x, out, totals, n, exclusive);
}
__global__ void scan_tiles_f64(const double* x, double* out, double* totals, long long n, int exclusive) {
    scan_tiles(x, out, totals, n, exclusive);
}
__global__ void add_offsets_f32(float* out, const float* t, long long n) { add_offsets(out, t, n); }
__global__ void add_offsets_f64(double* out, const double* t, long long n) { add_offsets(out, t, n); }
}
