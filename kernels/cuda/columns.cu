// Column-wise row-block kernels of hpc.ml's GPU fits: each column's sum and squared deviations about the block's
// mean (the block moments hpc/ml/_moments.py merges), the Gram matrix of the columns [x | y] about a shift (PCA and
// the linear models), and rows less a shift (the data centred once per fit).
// Launched by hpc/cuda/twins.py. As in kmeans.cu, each column's sums run over the rows in order in one thread (no
// atomics, no thread reads another's writes): the same bits on every run, and testable on the CPU.

// sums[f] = sum_i x[i, f]; m2[f] = sum_i (x[i, f] - sums[f] / m)^2 and devs[f] = sum_i (x[i, f] - sums[f] / m) (what
// the rounding of the mean left out of it), all in double; one thread per column.
template <typename T>
__device__ void column_moments(const T* __restrict__ x, double* __restrict__ sums, double* __restrict__ m2,
                               double* __restrict__ devs, int m, int d) {
    for (long long f = blockIdx.x * (long long)blockDim.x + threadIdx.x; f < d; f += (long long)gridDim.x * blockDim.x) {
        double total = 0.0;
        for (int i = 0; i < m; ++i) total += (double)x[(long long)i * d + f];
        double mean = total / m, acc = 0.0, dev = 0.0;
        for (int i = 0; i < m; ++i) {
            double diff = (double)x[(long long)i * d + f] - mean;
            acc += diff * diff;
            dev += diff;
        }
        sums[f] = total;
        m2[f] = acc;
        devs[f] = dev;
    }
}

// out[i, f] = x[i, f] - shift[f], in T (as NumPy's x - shift for a shift of x's dtype).
template <typename T>
__device__ void subtract_row(const T* __restrict__ x, const T* __restrict__ shift, T* __restrict__ out, long long m,
                             int d) {
    long long n = m * d;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x)
        out[e] = x[e] - shift[e % d];
}

// The columns z = [x | y]: x (m, d) of T, then y (m, t) in double (y may be absent when t == 0).
template <typename T>
__device__ __forceinline__ double column_of(const T* x, const double* y, long long i, int j, int d, int t) {
    return j < d ? (double)x[i * d + j] : y[i * t + (j - d)];
}

// sums[j] = sum_i z[i, j] for j < d + t, in double, one thread per column walking the rows in order.
template <typename T>
__device__ void pair_sums(const T* __restrict__ x, const double* __restrict__ y, double* __restrict__ sums, int m,
                          int d, int t) {
    for (long long j = blockIdx.x * (long long)blockDim.x + threadIdx.x; j < d + t; j += (long long)gridDim.x * blockDim.x) {
        double total = 0.0;
        for (long long i = 0; i < m; ++i) total += column_of(x, y, i, (int)j, d, t);
        sums[j] = total;
    }
}

// out[p, q] = out[q, p] = sum_i (z[i, p] - shift[p]) (z[i, q] - shift[q]), one thread per pair p <= q walking the
// rows in order (so the matrix is exactly symmetric); the thread of (p, p) also sums the deviations z[i, p] - shift[p]
// into devs[p] (what the rounding of the shift left out of the mean).
template <typename T>
__device__ void gram(const T* __restrict__ x, const double* __restrict__ y, const double* __restrict__ shift,
                     double* __restrict__ out, double* __restrict__ devs, int m, int d, int t) {
    long long w = d + t;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < w * w; e += (long long)gridDim.x * blockDim.x) {
        int p = (int)(e / w), q = (int)(e % w);
        if (q < p) continue;
        double acc = 0.0, dev = 0.0;
        for (long long i = 0; i < m; ++i) {
            double a = column_of(x, y, i, p, d, t) - shift[p];
            acc += a * (column_of(x, y, i, q, d, t) - shift[q]);
            dev += a;
        }
        out[p * w + q] = acc;
        out[q * w + p] = acc;
        if (p == q) devs[p] = dev;
    }
}

extern "C" {
__global__ void pair_sums_f32(const float* x, const double* y, double* sums, int m, int d, int t) {
    pair_sums(x, y, sums, m, d, t);
}
__global__ void pair_sums_f64(const double* x, const double* y, double* sums, int m, int d, int t) {
    pair_sums(x, y, sums, m, d, t);
}
__global__ void gram_f32(const float* x, const double* y, const double* shift, double* out, double* devs, int m,
                         int d, int t) {
    gram(x, y, shift, out, devs, m, d, t);
}
__global__ void gram_f64(const double* x, const double* y, const double* shift, double* out, double* devs, int m,
                         int d, int t) {
    gram(x, y, shift, out, devs, m, d, t);
}
__global__ void column_moments_f32(const float* x, double* sums, double* m2, double* devs, int m, int d) {
    column_moments(x, sums, m2, devs, m, d);
}
__global__ void column_moments_f64(const double* x, double* sums, double* m2, double* devs, int m, int d) {
    column_moments(x, sums, m2, devs, m, d);
}
__global__ void subtract_row_f32(const float* x, const float* shift, float* out, long long m, int d) {
    subtract_row(x, shift, out, m, d);
}
__global__ void subtract_row_f64(const double* x, const double* shift, double* out, long long m, int d) {
    subtract_row(x, shift, out, m, d);
}
}
