// GPU twins of hpc.kernels.distances: pairwise squared Euclidean distances (computed directly, sum of squared
// differences accumulated in double, never negative) and k-means assignment (nearest centroid, first on ties,
// a number beats NaN). C-contiguous (m, d) points and (n, d) / (k, d) centroids. Launched by hpc/cuda/twins.py.

#define TS 16

// out[i, j] for a TS x TS tile of (i, j) per block; features staged through shared memory TS at a time.
template <typename T>
__device__ void sqdist(const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ out, int m, int n, int d) {
    __shared__ T xs[TS][TS + 1], ys[TS][TS + 1];
    int i = blockIdx.y * TS + threadIdx.y, j = blockIdx.x * TS + threadIdx.x;
    int yi = blockIdx.x * TS + threadIdx.y;  // the y row this thread stages
    double acc = 0.0;
    for (int f0 = 0; f0 < d; f0 += TS) {
        int f = f0 + threadIdx.x;
        xs[threadIdx.y][threadIdx.x] = (i < m && f < d) ? x[(long long)i * d + f] : (T)0;
        ys[threadIdx.y][threadIdx.x] = (yi < n && f < d) ? y[(long long)yi * d + f] : (T)0;
        __syncthreads();
        int lim = d - f0 < TS ? d - f0 : TS;
        for (int k = 0; k < lim; ++k) {
            double diff = (double)xs[threadIdx.y][k] - (double)ys[threadIdx.x][k];
            acc += diff * diff;
        }
        __syncthreads();
    }
    if (i < m && j < n) out[(long long)i * n + j] = (T)acc;
}

template <typename T>
__device__ void kmeans_assign(const T* __restrict__ x, const T* __restrict__ c, long long* __restrict__ labels,
                              T* __restrict__ dist, int m, int k, int d) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < m; i += (long long)gridDim.x * blockDim.x) {
        const T* xi = x + i * d;
        long long best = 0;
        double bd = 0.0;
        for (int j = 0; j < k; ++j) {
            const T* cj = c + (long long)j * d;
            double acc = 0.0;
            for (int f = 0; f < d; ++f) {
                double diff = (double)xi[f] - (double)__ldg(cj + f);
                acc += diff * diff;
            }
            if (j == 0 || acc < bd || (bd != bd && acc == acc)) {
                bd = acc;
                best = j;
            }
        }
        labels[i] = best;
        dist[i] = (T)bd;
    }
}

extern "C" {
__global__ void sqdist_f32(const float* x, const float* y, float* out, int m, int n, int d) { sqdist(x, y, out, m, n, d); }
__global__ void sqdist_f64(const double* x, const double* y, double* out, int m, int n, int d) {
    sqdist(x, y, out, m, n, d);
}
__global__ void kmeans_assign_f32(const float* x, const float* c, long long* labels, float* dist, int m, int k, int d) {
    kmeans_assign(x, c, labels, dist, m, k, d);
}
__global__ void kmeans_assign_f64(const double* x, const double* c, long long* labels, double* dist, int m, int k,
                                  int d) {
    kmeans_assign(x, c, labels, dist, m, k, d);
}
}
