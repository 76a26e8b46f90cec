// BLAS level 1 GPU twins of hpc.kernels.blas1: axpy, dot, nrm2. float32 and float64; dot and nrm2 accumulate
// in double. Reductions write one partial per block; a second one-block launch combines the partials.
// Launched by hpc/cuda/twins.py through hpc/cuda/module.py (prepared launches, 256 threads per block).

#include "common.cuh"

template <typename T>
__device__ void axpy(T a, const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ out, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        out[i] = a * x[i] + y[i];
}

template <typename T>
__device__ void dot_partial(const T* __restrict__ x, const T* __restrict__ y, long long n, double* partials) {
    double acc = 0.0;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        acc += (double)x[i] * (double)y[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// nrm2 without overflow or underflow: each thread keeps (scale, ssq) with norm = scale * sqrt(ssq), as LAPACK's
// dlassq; pairs combine the same way.
__device__ __forceinline__ void ssq_merge(double& scale, double& ssq, double s2, double q2) {
    if (s2 == 0.0) return;
    if (scale < s2) {
        double r = scale / s2;
        ssq = q2 + ssq * r * r;
        scale = s2;
    } else {
        double r = s2 == scale ? 1.0 : s2 / scale;  // both infinite: inf / inf would be NaN, the norm is inf
        ssq += q2 * r * r;
    }
}

__device__ void block_ssq(double& scale, double& ssq) {  // the result is valid in thread 0
    __shared__ double ss[BLOCK], qq[BLOCK];
    ss[threadIdx.x] = scale;
    qq[threadIdx.x] = ssq;
    __syncthreads();
    for (int w = BLOCK / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) {
            double s = ss[threadIdx.x], q = qq[threadIdx.x];
            ssq_merge(s, q, ss[threadIdx.x + w], qq[threadIdx.x + w]);
            ss[threadIdx.x] = s;
            qq[threadIdx.x] = q;
        }
        __syncthreads();
    }
    scale = ss[0];
    ssq = qq[0];
}

template <typename T>
__device__ void nrm2_partial(const T* __restrict__ x, long long n, double* partials) {
    double scale = 0.0, ssq = 1.0;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        double a = fabs((double)x[i]);
        if (a != 0.0 || isnan(a)) ssq_merge(scale, ssq, a, 1.0);
        if (isnan(a)) scale = a;
    }
    if (scale == 0.0) ssq = 0.0;
    block_ssq(scale, ssq);
    if (threadIdx.x == 0) {
        partials[2 * blockIdx.x] = scale;
        partials[2 * blockIdx.x + 1] = ssq;
    }
}

extern "C" {
__global__ void axpy_f32(float a, const float* x, const float* y, float* out, long long n) { axpy(a, x, y, out, n); }
__global__ void axpy_f64(double a, const double* x, const double* y, double* out, long long n) { axpy(a, x, y, out, n); }
__global__ void dot_partial_f32(const float* x, const float* y, long long n, double* p) { dot_partial(x, y, n, p); }
__global__ void dot_partial_f64(const double* x, const double* y, long long n, double* p) { dot_partial(x, y, n, p); }
__global__ void nrm2_partial_f32(const float* x, long long n, double* p) { nrm2_partial(x, n, p); }
__global__ void nrm2_partial_f64(const double* x, long long n, double* p) { nrm2_partial(x, n, p); }

// One block: the sum of m partials into out[0].
__global__ void finish_sum(const double* partials, int m, double* out) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < m; i += blockDim.x) acc += partials[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[0] = acc;
}

// One block: the norm from m (scale, ssq) pairs into out[0].
__global__ void finish_nrm2(const double* partials, int m, double* out) {
    double scale = 0.0, ssq = 0.0;
    for (int i = threadIdx.x; i < m; i += blockDim.x) {
        if (scale == 0.0) {
            scale = partials[2 * i];
            ssq = partials[2 * i + 1];
        } else {
            ssq_merge(scale, ssq, partials[2 * i], partials[2 * i + 1]);
        }
        if (isnan(partials[2 * i]) || isnan(partials[2 * i + 1])) scale = nan("");
    }
    bool has_nan = isnan(scale);
    block_ssq(scale, ssq);
    has_nan = __syncthreads_or(has_nan);
    if (threadIdx.x == 0) out[0] = has_nan ? nan("") : scale * sqrt(ssq);
}
}
