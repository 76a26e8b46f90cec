// GPU twins of hpc.kernels.logistic_loss_grad and softmax_loss_grad: the half losses scikit-learn's LinearModelLoss
// uses, and their gradients, over a block of rows. Launched by hpc/cuda/twins.py, one row block at a time:
//   1. one thread per row: its scores, loss and residuals, into r (m, k + 1): the k weighted residuals, then the
//      row's weighted loss;
//   2. weighted_column_sums: parts[s, c, j] = sum over segment s's rows of r[i, c] * (x[i, j] for j < d, 1 for
//      j == d), one thread per (segment, c, j) walking its rows in order;
//   3. merge_segments (segments.cuh): the segments added in order. out[c, :d + 1] is the gradient of class c (the
//      intercept's last) and out[k, d] the loss.
// No atomics and no thread reads another's writes within a launch: fixed-order sums, testable on the CPU.
#include "segments.cuh"

// Binary: z = x.w + b, loss = w (log(1 + e^z) - y z), residual w (sigmoid(z) - y); written as the CPU kernel does.
template <typename T>
__device__ void binary_rows(const T* __restrict__ x, const double* __restrict__ y, const double* __restrict__ weight,
                            const double* __restrict__ coef, double intercept, double* __restrict__ r, int m, int d) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < m; i += (long long)gridDim.x * blockDim.x) {
        const T* xi = x + i * d;
        double z = intercept;
        for (int j = 0; j < d; ++j) z += (double)xi[j] * coef[j];
        double log1pexp, p;
        if (z > 0.0) {
            double e = exp(-z);
            log1pexp = z + log1p(e);
            p = 1.0 / (1.0 + e);
        } else {
            double e = exp(z);
            log1pexp = log1p(e);
            p = e / (1.0 + e);
        }
        double w = weight[i];
        r[i * 2] = w * (p - y[i]);
        r[i * 2 + 1] = w * (log1pexp - y[i] * z);
    }
}

// Multinomial: z_c = x.W_c + b_c, loss = w (logsumexp(z) - z_y), residuals w (softmax(z) - onehot(y)).
template <typename T>
__device__ void softmax_rows(const T* __restrict__ x, const long long* __restrict__ y,
                             const double* __restrict__ weight, const double* __restrict__ coef,
                             const double* __restrict__ intercept, double* __restrict__ r, int m, int d, int k) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < m; i += (long long)gridDim.x * blockDim.x) {
        const T* xi = x + i * d;
        double* ri = r + i * (k + 1);
        double top = 0.0;
        for (int c = 0; c < k; ++c) {
            double z = intercept[c];
            const double* wc = coef + (long long)c * d;
            for (int j = 0; j < d; ++j) z += (double)xi[j] * wc[j];
            ri[c] = z;
            top = (c == 0 || z > top) ? z : top;
        }
        long long label = y[i];
        double picked = ri[label], total = 0.0;
        for (int c = 0; c < k; ++c) {
            ri[c] = exp(ri[c] - top);
            total += ri[c];
        }
        double w = weight[i], scale = w / total;
        for (int c = 0; c < k; ++c) ri[c] *= scale;
        ri[label] -= w;
        ri[k] = w * (top + log(total) - picked);
    }
}

// parts[s, c, j] = sum_{i in segment s} r[i, c] * xj(i), xj = x[i, j] for j < d and 1 for j == d; c < width_r.
template <typename T>
__device__ void weighted_column_sums(const T* __restrict__ x, const double* __restrict__ r,
                                     double* __restrict__ parts, int m, int d, int width_r) {
    long long cells = (long long)width_r * (d + 1);
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < SEGMENTS * cells;
         e += (long long)gridDim.x * blockDim.x) {
        int s = (int)(e / cells), c = (int)(e % cells / (d + 1)), j = (int)(e % (d + 1)), lo, hi;
        segment_rows(s, m, &lo, &hi);
        double acc = 0.0;
        for (int i = lo; i < hi; ++i) {
            double xj = j < d ? (double)x[(long long)i * d + j] : 1.0;
            acc += r[(long long)i * width_r + c] * xj;
        }
        parts[e] = acc;
    }
}

extern "C" {
__global__ void binary_rows_f32(const float* x, const double* y, const double* weight, const double* coef,
                                double intercept, double* r, int m, int d) {
    binary_rows(x, y, weight, coef, intercept, r, m, d);
}
__global__ void binary_rows_f64(const double* x, const double* y, const double* weight, const double* coef,
                                double intercept, double* r, int m, int d) {
    binary_rows(x, y, weight, coef, intercept, r, m, d);
}
__global__ void softmax_rows_f32(const float* x, const long long* y, const double* weight, const double* coef,
                                 const double* intercept, double* r, int m, int d, int k) {
    softmax_rows(x, y, weight, coef, intercept, r, m, d, k);
}
__global__ void softmax_rows_f64(const double* x, const long long* y, const double* weight, const double* coef,
                                 const double* intercept, double* r, int m, int d, int k) {
    softmax_rows(x, y, weight, coef, intercept, r, m, d, k);
}
__global__ void weighted_column_sums_f32(const float* x, const double* r, double* parts, int m, int d, int width_r) {
    weighted_column_sums(x, r, parts, m, d, width_r);
}
__global__ void weighted_column_sums_f64(const double* x, const double* r, double* parts, int m, int d, int width_r) {
    weighted_column_sums(x, r, parts, m, d, width_r);
}
__global__ void logistic_merge_segments(const double* parts, double* out, long long size) {
    merge_segments(parts, out, size);
}
}
