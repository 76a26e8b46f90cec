// Row-wise GPU twin of hpc.kernels.rows.softmax: exp(x - max) / sum(exp(x - max)) over each row of a C-contiguous
// (rows, cols) matrix. One block of 256 threads per row (grid-stride over rows); a row holding a NaN is all NaN.
// Launched by hpc/cuda/twins.py through hpc/cuda/module.py.

#include "common.cuh"

template <typename A>
__device__ A block_reduce(A v, bool is_max, A* s) {  // every thread gets the result
    s[threadIdx.x] = v;
    __syncthreads();
    for (int w = BLOCK / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) {
            A a = s[threadIdx.x], b = s[threadIdx.x + w];
            s[threadIdx.x] = is_max ? ((a != a || b != b) ? a + b : (a > b ? a : b)) : a + b;
        }
        __syncthreads();
    }
    A r = s[0];
    __syncthreads();
    return r;
}

template <typename T, typename A>
__device__ void softmax_rows(const T* x, T* out, long long rows, long long cols) {  // out may be x: no __restrict__
    __shared__ A s[BLOCK];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * cols;
        T* orow = out + r * cols;
        A m = -INFINITY;
        for (long long j = threadIdx.x; j < cols; j += BLOCK) {
            A v = (A)xr[j];
            m = (v != v || m != m) ? v + m : (v > m ? v : m);
        }
        m = block_reduce<A>(m, true, s);
        A acc = 0;
        for (long long j = threadIdx.x; j < cols; j += BLOCK) acc += exp((A)xr[j] - m);
        acc = block_reduce<A>(acc, false, s);
        A inv = (A)1 / acc;
        for (long long j = threadIdx.x; j < cols; j += BLOCK) orow[j] = (T)(exp((A)xr[j] - m) * inv);
    }
}

extern "C" {
__global__ void softmax_f32(const float* x, float* out, long long rows, long long cols) {
    softmax_rows<float, float>(x, out, rows, cols);
}
__global__ void softmax_f64(const double* x, double* out, long long rows, long long cols) {
    softmax_rows<double, double>(x, out, rows, cols);
}
}
