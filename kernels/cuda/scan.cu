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

// float32 input: partial sums in double, as hpc.kernels does, and one rounding per output. The tile totals come
// first (tile_sums), their exclusive scan is the f64 scan above, and scan_tiles_acc scans each tile in double
// from its offset: x is read twice, nothing is rounded before the final store.
template <typename T, typename A>
__device__ void tile_sums(const T* __restrict__ x, A* __restrict__ totals, long long n) {
    long long base = (long long)blockIdx.x * TILE + (long long)threadIdx.x * ITEMS;
    double run = 0.0;
    for (int k = 0; k < ITEMS; ++k)
        if (base + k < n) run += (double)x[base + k];
    run = block_sum(run);
    if (threadIdx.x == 0) totals[blockIdx.x] = (A)run;
}

template <typename T, typename A>
__device__ void scan_tiles_acc(const T* __restrict__ x, T* __restrict__ out, const A* __restrict__ offsets,
                               long long n, int exclusive) {
    __shared__ A s[BLOCK];
    long long base = (long long)blockIdx.x * TILE + (long long)threadIdx.x * ITEMS;
    A v[ITEMS];
    A run = 0;
    for (int k = 0; k < ITEMS; ++k) {
        A e = base + k < n ? (A)x[base + k] : (A)0;
        v[k] = exclusive ? run : run + e;
        run += e;
    }
    s[threadIdx.x] = run;
    __syncthreads();
    for (int off = 1; off < BLOCK; off <<= 1) {
        A add = threadIdx.x >= off ? s[threadIdx.x - off] : (A)0;
        __syncthreads();
        s[threadIdx.x] += add;
        __syncthreads();
    }
    A before = (offsets != nullptr ? offsets[blockIdx.x] : (A)0) + (threadIdx.x > 0 ? s[threadIdx.x - 1] : (A)0);
    for (int k = 0; k < ITEMS; ++k)
        if (base + k < n) out[base + k] = (T)(before + v[k]);
}

extern "C" {
__global__ void tile_sums_f32(const float* x, double* totals, long long n) { tile_sums(x, totals, n); }
__global__ void scan_tiles_acc_f32(const float* x, float* out, const double* offsets, long long n, int exclusive) {
    scan_tiles_acc(x, out, offsets, n, exclusive);
}
__global__ void scan_tiles_f32(const float* x, float* out, float* totals, long long n, int exclusive) {
    scan_tiles(x, out, totals, n, exclusive);
}
__global__ void scan_tiles_f64(const double* x, double* out, double* totals, long long n, int exclusive) {
    scan_tiles(x, out, totals, n, exclusive);
}
__global__ void add_offsets_f32(float* out, const float* t, long long n) { add_offsets(out, t, n); }
__global__ void add_offsets_f64(double* out, const double* t, long long n) { add_offsets(out, t, n); }
}
