// Portability macros shared by the omegabridge C++ / CUDA sources.
#pragma once

// Functions marked OB_HOST_DEVICE compile for the host with any C++17 compiler and,
// under nvcc, for both host and device.
#if defined(__CUDACC__)
#define OB_HOST_DEVICE __host__ __device__
#else
#define OB_HOST_DEVICE
#endif
