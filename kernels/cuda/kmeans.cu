// GPU twin of hpc.kernels.kmeans_step: each row's nearest centre (first on ties), its squared distance, and the
// rows added up per cluster. Launched by hpc/cuda/twins.py, one row block at a time.
//
// Every sum is added in an order fixed by the block's shape alone, never by thread timing (no atomics): a block's
// results are the same bits on every run and however the rows were split over ranks (hpc.ml relies on it).
// No kernel here reads what another thread of the same launch writes (no __syncthreads, no shuffles), so the tests
// also run this file on the CPU, one thread after another (tests/cuda/test_kernels_emulated.py).

#include "segments.cuh"  // the per-cluster sums: SEGMENTS runs of rows, then the runs in order

// labels[i], dist[i] for each row i: the centre with the smallest sum((x_i - c_j)^2), computed directly in double
// (no cancellation: the distance is exact to rounding and never negative).
template <typename T>
__device__ void kmeans_label(const T* __restrict__ x, const double* __restrict__ c, int* __restrict__ labels,
                             double* __restrict__ dist, int m, int k, int d) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < m; i += (long long)gridDim.x * blockDim.x) {
        const T* xi = x + i * d;
        int best = 0;
        double best_dist = 0.0;
        for (int j = 0; j < k; ++j) {
            const double* cj = c + (long long)j * d;
            double acc = 0.0;
            for (int f = 0; f < d; ++f) {
                double diff = (double)xi[f] - cj[f];
                acc += diff * diff;
            }
            if (j == 0 || acc < best_dist) {
                best_dist = acc;
                best = j;
            }
        }
        labels[i] = best;
        dist[i] = best_dist;
    }
}

// parts[s, j, f] (f < d) += the rows of segment s labelled j, feature f; parts[s, j, d] += their count. One
// thread per (segment, column): it walks its segment's rows in order. parts must start zeroed.
template <typename T>
__device__ void kmeans_segment_sums(const T* __restrict__ x, const int* __restrict__ labels,
                                    double* __restrict__ parts, int m, int k, int d) {
    int width = d + 1;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < (long long)SEGMENTS * width;
         e += (long long)gridDim.x * blockDim.x) {
        int s = (int)(e / width), f = (int)(e % width), lo, hi;
        double* part = parts + (long long)s * k * width;
        segment_rows(s, m, &lo, &hi);
        for (int i = lo; i < hi; ++i) {
            part[(long long)labels[i] * width + f] += f < d ? (double)x[(long long)i * d + f] : 1.0;
        }
    }
}

extern "C" {
__global__ void kmeans_label_f32(const float* x, const double* c, int* labels, double* dist, int m, int k, int d) {
    kmeans_label(x, c, labels, dist, m, k, d);
}
__global__ void kmeans_label_f64(const double* x, const double* c, int* labels, double* dist, int m, int k, int d) {
    kmeans_label(x, c, labels, dist, m, k, d);
}
__global__ void kmeans_segment_sums_f32(const float* x, const int* labels, double* parts, int m, int k, int d) {
    kmeans_segment_sums(x, labels, parts, m, k, d);
}
__global__ void kmeans_segment_sums_f64(const double* x, const int* labels, double* parts, int m, int k, int d) {
    kmeans_segment_sums(x, labels, parts, m, k, d);
}
__global__ void kmeans_merge_segments(const double* parts, double* out, long long size) {
    merge_segments(parts, out, size);
}
}
