// Helpers shared by the GPU twins: the block size every launch in hpc/cuda/twins.py uses, and a double-precision
// warp and block sum. Included by the .cu files next to it; hpc/cuda/module.py hashes every .cuh here into the
// cubin cache key, so editing this file recompiles its users.
#pragma once

#define BLOCK 256

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

__device__ double block_sum(double v) {  // the result is valid in thread 0
    __shared__ double s[BLOCK / 32];
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0) s[threadIdx.x >> 5] = v;
    __syncthreads();
    v = threadIdx.x < BLOCK / 32 ? s[threadIdx.x] : 0.0;
    if (threadIdx.x < 32) v = warp_sum(v);
    return v;
}
