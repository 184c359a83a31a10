/* gnv plugin ABI: how a GroupNorm kernel gnv did not build is handed to `gnv validate --plugin`.
 *
 * Plain C (C99), no C++ types: a plugin is a shared library built by any compiler that exports
 * exactly two functions,
 *
 *     uint32_t gnv_plugin_abi_version(void);        returns GNV_PLUGIN_ABI_VERSION
 *     const gnv_kernel* gnv_plugin_kernel(void);     describes the kernel (static storage)
 *
 * gnv rejects, with a message naming what is wrong, a library that lacks either symbol, reports
 * an ABI version it does not speak, returns a null kernel, a struct_size smaller than its version's
 * gnv_kernel, no name, no dtypes or layouts, unknown epilogue or affine-mode bits, or a null
 * forward function.
 *
 * Versions. gnv speaks GNV_PLUGIN_ABI_VERSION_MIN to GNV_PLUGIN_ABI_VERSION. Version 2 appended
 * fields at the ends of structs, so a version 1 plugin keeps working unchanged:
 *   - gnv_kernel.epilogues and .affine_modes: the fused forms the kernel applies. gnv reads them
 *     only from a version 2 plugin whose struct_size covers them; a version 1 plugin supports
 *     plain GroupNorm with per-channel parameters, and gnv never calls it with anything else (the
 *     fused cases are SKIPPED for it).
 *   - gnv_problem.epilogue and .affine_mode: which form this call is.
 *   - gnv_backward_args.beta: the epilogue's backward needs v = gamma xhat + beta. Every call into the plugin, the two above
 * included, runs in a child process: a crash becomes the verdict `crash`, a hang `timeout`.
 *
 * Conventions of one call:
 *   - x, y, dy, dx have the logical shape (N, C, *spatial) and the problem's dtype; their strides
 *     (in elements) say where element (n, c, s...) lies: channels-first (GNV_LAYOUT_NCHW) or
 *     channels-last (GNV_LAYOUT_NHWC) dense storage. A kernel may read either `layout` or the
 *     strides.
 *   - gamma, beta, dgamma, dbeta have shape (C), or (N, C) when affine_mode is
 *     GNV_AFFINE_PER_SAMPLE, the problem's dtype; null when affine is 0 (gamma = 1, beta = 0).
 *   - With epilogue GNV_EPILOGUE_SILU, forward writes y = silu(gamma xhat + beta), silu(v) =
 *     v / (1 + exp(-v)), and backward's dy is the gradient of that y (dx, dgamma, dbeta through
 *     silu'(v)).
 *   - mean and rstd have shape (N, G) and the accumulation dtype: F32 for F16/BF16/F32, F64 for
 *     F64. rstd = 1 / sqrt(biased variance + eps).
 *   - F16 is IEEE binary16, BF16 the upper half of a binary32 (raw uint16_t bits), both stored as
 *     16-bit words.
 *   - Output buffers are filled with a NaN pattern before the call: an element left unwritten is
 *     reported as such.
 *   - backward receives the exact mean and rstd of x (rounded to the accumulation dtype) and
 *     writes dx, and dgamma and dbeta when affine.
 *   - A function returns GNV_OK, or another gnv_status and may write a NUL-terminated message of
 *     at most msg_size bytes into msg; gnv reports it as the cell's error.
 */
#ifndef GNV_PLUGIN_H
#define GNV_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GNV_PLUGIN_ABI_VERSION 2u
#define GNV_PLUGIN_ABI_VERSION_MIN 1u
#define GNV_MAX_RANK 5 /* N, C and up to three spatial extents */

typedef enum gnv_dtype { GNV_DTYPE_F64 = 0, GNV_DTYPE_F32 = 1, GNV_DTYPE_F16 = 2, GNV_DTYPE_BF16 = 3 } gnv_dtype;
typedef enum gnv_layout { GNV_LAYOUT_NCHW = 0, GNV_LAYOUT_NHWC = 1 } gnv_layout;
typedef enum gnv_epilogue { GNV_EPILOGUE_NONE = 0, GNV_EPILOGUE_SILU = 1 } gnv_epilogue;
typedef enum gnv_affine_mode { GNV_AFFINE_PER_CHANNEL = 0, GNV_AFFINE_PER_SAMPLE = 1 } gnv_affine_mode;

/* Bits of gnv_kernel.dtypes and gnv_kernel.layouts. */
#define GNV_DTYPE_BIT(d) (1u << (unsigned)(d))
#define GNV_LAYOUT_BIT(l) (1u << (unsigned)(l))
/* Bits of gnv_kernel.epilogues and gnv_kernel.affine_modes (version 2). */
#define GNV_EPILOGUE_BIT(e) (1u << (unsigned)(e))
#define GNV_AFFINE_BIT(m) (1u << (unsigned)(m))

typedef enum gnv_status {
  GNV_OK = 0,
  GNV_ERR_UNSUPPORTED = 1, /* this problem (dtype, layout, shape) is not supported */
  GNV_ERR_INVALID = 2,     /* the arguments are invalid */
  GNV_ERR_INTERNAL = 3     /* anything else (out of memory, a device error) */
} gnv_status;

typedef struct gnv_buffer {
  void* data;                     /* const for inputs */
  int32_t dtype;                  /* gnv_dtype */
  int32_t rank;
  int64_t shape[GNV_MAX_RANK];    /* logical: (N, C, *spatial), (C) or (N, G) */
  int64_t strides[GNV_MAX_RANK];  /* in elements */
} gnv_buffer;

typedef struct gnv_problem {
  int64_t N, C, G;
  int32_t spatial_rank;  /* 0..3 */
  int64_t spatial[3];    /* (W), (H, W) or (D, H, W) */
  double eps;
  int32_t affine;        /* 0 or 1 */
  int32_t dtype;         /* gnv_dtype of x, y, gamma, beta, dy, dx, dgamma, dbeta */
  int32_t layout;        /* gnv_layout of x, y, dy, dx */
  /* version 2 */
  int32_t epilogue;      /* gnv_epilogue */
  int32_t affine_mode;   /* gnv_affine_mode (meaningful when affine is 1) */
} gnv_problem;

typedef struct gnv_forward_args {
  const gnv_problem* problem;
  const gnv_buffer* x;
  const gnv_buffer* gamma; /* null unless affine */
  const gnv_buffer* beta;  /* null unless affine */
  gnv_buffer* y;
  gnv_buffer* mean;
  gnv_buffer* rstd;
} gnv_forward_args;

typedef struct gnv_backward_args {
  const gnv_problem* problem;
  const gnv_buffer* dy;
  const gnv_buffer* x;
  const gnv_buffer* mean;
  const gnv_buffer* rstd;
  const gnv_buffer* gamma; /* null unless affine */
  gnv_buffer* dx;
  gnv_buffer* dgamma;      /* null unless affine */
  gnv_buffer* dbeta;       /* null unless affine */
  /* version 2 */
  const gnv_buffer* beta;  /* null unless affine */
} gnv_backward_args;

typedef int32_t (*gnv_forward_fn)(const gnv_forward_args* args, char* msg, size_t msg_size);
typedef int32_t (*gnv_backward_fn)(const gnv_backward_args* args, char* msg, size_t msg_size);

#define GNV_KERNEL_DETERMINISTIC 1u /* flags: bitwise the same outputs for the same inputs */

typedef struct gnv_kernel {
  uint32_t struct_size;   /* sizeof(gnv_kernel) as the plugin was compiled */
  const char* name;       /* [A-Za-z0-9_.+-]+, unique among the impls gnv knows */
  const char* summary;    /* one line, may be null */
  const char* device;     /* "cpu", "cuda", ...; may be null ("cpu") */
  uint32_t dtypes;        /* GNV_DTYPE_BIT(...) | ... */
  uint32_t layouts;       /* GNV_LAYOUT_BIT(...) | ... */
  uint32_t flags;         /* GNV_KERNEL_* */
  gnv_forward_fn forward;   /* required */
  gnv_backward_fn backward; /* null: forward only */
  /* version 2 */
  uint32_t epilogues;     /* GNV_EPILOGUE_BIT(GNV_EPILOGUE_SILU) | ...; NONE is always supported */
  uint32_t affine_modes;  /* GNV_AFFINE_BIT(GNV_AFFINE_PER_SAMPLE); PER_CHANNEL is always supported */
} gnv_kernel;
/* The size of a version 1 gnv_kernel: what struct_size must reach for a version 1 plugin. */
#define GNV_KERNEL_V1_SIZE (offsetof(gnv_kernel, epilogues))

/* The two symbols a plugin exports. */
typedef uint32_t (*gnv_plugin_abi_version_fn)(void);
typedef const gnv_kernel* (*gnv_plugin_kernel_fn)(void);
#define GNV_PLUGIN_ABI_VERSION_SYMBOL "gnv_plugin_abi_version"
#define GNV_PLUGIN_KERNEL_SYMBOL "gnv_plugin_kernel"

#ifdef __cplusplus
}
#endif

#endif /* GNV_PLUGIN_H */
