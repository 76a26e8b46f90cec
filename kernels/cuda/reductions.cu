// Reduction GPU twins of hpc.kernels.reductions: sum (accumulated in double), min and max (NaN wins, as NumPy).
// Each launch writes one partial per block; a second one-block launch combines them.
// Launched by hpc/cuda/twins.py through hpc/cuda/module.py (256 threads per block).

#include "common.cuh"

template <typename T>
__device__ void sum_partial(const T* __restrict__ x, long long n, double* partials) {
    double acc = 0.0;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        acc += (double)x[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// sign > 0: min; sign < 0: max. A NaN, once seen, is kept.
template <typename T>
__device__ __forceinline__ T pick(T m, T v, int sign) {
    if (m != m) return m;
    if (v != v) return v;
    return (sign > 0 ? v < m : v > m) ? v : m;
}

template <typename T>
__device__ void extreme(const T* __restrict__ x, long long n, int sign, T* out) {
    __shared__ T s[BLOCK];
    T m = x[0];  // n >= 1: the caller checks
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        m = pick(m, x[i], sign);
    s[threadIdx.x] = m;
    __syncthreads();
    for (int w = BLOCK / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) s[threadIdx.x] = pick(s[threadIdx.x], s[threadIdx.x + w], sign);
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

extern "C" {
__global__ void sum_partial_f32(const float* x, long long n, double* p) { sum_partial(x, n, p); }
__global__ void sum_partial_f64(const double* x, long long n, double* p) { sum_partial(x, n, p); }
__global__ void extreme_f32(const float* x, long long n, int sign, float* out) { extreme(x, n, sign, out); }
__global__ void extreme_f64(const double* x, long long n, int sign, double* out) { extreme(x, n, sign, out); }
}
