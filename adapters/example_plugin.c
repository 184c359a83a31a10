/* A minimal gnv plugin in plain C: copy this file, replace the two kernels with calls into yours.
 *
 *   cc -O2 -shared -fPIC -I path/to/gnv/include example_plugin.c -o libexample_plugin.so -lm
 *   gnv validate --plugin ./libexample_plugin.so --preset smoke
 *
 * GroupNorm forward and backward for f32 and f64, channels-first and channels-last, two passes
 * with double accumulation, plain or fused (the SiLU epilogue, per-sample gamma and beta: ABI
 * version 2). Elements are addressed through the buffers' strides, so one loop nest serves both
 * layouts. Contract: include/gnv/plugin.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "gnv/plugin.h"

/* Spatial extents padded to three: (D, H, W) with missing leading ones = 1. */
typedef struct {
  int64_t N, C, G, cpg, D, H, W;
} dims;

static dims dims_of(const gnv_problem* p) {
  dims d = {p->N, p->C, p->G, p->C / p->G, 1, 1, 1};
  int64_t ext[3] = {1, 1, 1};
  for (int i = 0; i < p->spatial_rank; ++i) ext[3 - p->spatial_rank + i] = p->spatial[i];
  d.D = ext[0], d.H = ext[1], d.W = ext[2];
  return d;
}

/* Offset of element (n, c, d, h, w) of an x-shaped buffer. */
static int64_t at(const gnv_buffer* b, int spatial_rank, int64_t n, int64_t c, int64_t dd, int64_t h, int64_t w) {
  int64_t ext_idx[3] = {dd, h, w};
  int64_t off = n * b->strides[0] + c * b->strides[1];
  for (int i = 0; i < spatial_rank; ++i) off += ext_idx[3 - spatial_rank + i] * b->strides[2 + i];
  return off;
}

static double get(const gnv_buffer* b, int64_t i) {
  return b->dtype == GNV_DTYPE_F64 ? ((const double*)b->data)[i] : (double)((const float*)b->data)[i];
}
static void set(gnv_buffer* b, int64_t i, double v) {
  if (b->dtype == GNV_DTYPE_F64) ((double*)b->data)[i] = v;
  else ((float*)b->data)[i] = (float)v;
}

/* The parameter offset of (n, c): per channel, or per sample and channel. */
static int64_t param(const gnv_problem* p, int64_t n, int64_t c) {
  return p->affine_mode == GNV_AFFINE_PER_SAMPLE ? n * p->C + c : c;
}

/* v = gamma xhat + beta, the value the epilogue takes. */
static double affine_of(const gnv_problem* p, const gnv_buffer* gamma, const gnv_buffer* beta, int64_t n,
                        int64_t c, double xhat) {
  return p->affine ? xhat * get(gamma, param(p, n, c)) + get(beta, param(p, n, c)) : xhat;
}
static double silu(double v) { return v / (1.0 + exp(-v)); }
static double silu_grad(double v) {
  const double s = 1.0 / (1.0 + exp(-v));
  return s * (1.0 + v * (1.0 - s));
}

/* Visits every element (n, c, s) of group (n, g) with its offset in x-shaped buffer b. */
#define FOR_GROUP(b, rank, dm, n, g, OFF, ...)                                          \
  for (int64_t c = (g) * (dm).cpg; c < ((g) + 1) * (dm).cpg; ++c)                         \
    for (int64_t dd = 0; dd < (dm).D; ++dd)                                               \
      for (int64_t hh = 0; hh < (dm).H; ++hh)                                             \
        for (int64_t ww = 0; ww < (dm).W; ++ww) {                                         \
          const int64_t OFF = at((b), (rank), (n), c, dd, hh, ww);                        \
          __VA_ARGS__                                                                     \
        }

static int32_t forward(const gnv_forward_args* a, char* msg, size_t msg_size) {
  const gnv_problem* p = a->problem;
  if (p->dtype != GNV_DTYPE_F32 && p->dtype != GNV_DTYPE_F64) {
    snprintf(msg, msg_size, "example plugin: only f32 and f64");
    return GNV_ERR_UNSUPPORTED;
  }
  const dims d = dims_of(p);
  const int r = p->spatial_rank;
  const double m = (double)(d.cpg * d.D * d.H * d.W);
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t g = 0; g < d.G; ++g) {
      double sum = 0, sq = 0;
      FOR_GROUP(a->x, r, d, n, g, o, { sum += get(a->x, o); })
      const double mean = sum / m;
      FOR_GROUP(a->x, r, d, n, g, o, {
        const double t = get(a->x, o) - mean;
        sq += t * t;
      })
      const double rstd = 1.0 / sqrt(sq / m + p->eps);
      set(a->mean, n * d.G + g, mean);
      set(a->rstd, n * d.G + g, rstd);
      FOR_GROUP(a->x, r, d, n, g, o, {
        const double v = affine_of(p, a->gamma, a->beta, n, c, (get(a->x, o) - mean) * rstd);
        set(a->y, at(a->y, r, n, c, dd, hh, ww), p->epilogue == GNV_EPILOGUE_SILU ? silu(v) : v);
        (void)o;
      })
    }
  return GNV_OK;
}

static int32_t backward(const gnv_backward_args* a, char* msg, size_t msg_size) {
  const gnv_problem* p = a->problem;
  if (p->dtype != GNV_DTYPE_F32 && p->dtype != GNV_DTYPE_F64) {
    snprintf(msg, msg_size, "example plugin: only f32 and f64");
    return GNV_ERR_UNSUPPORTED;
  }
  const dims d = dims_of(p);
  const int r = p->spatial_rank;
  const double m = (double)(d.cpg * d.D * d.H * d.W);
  double* dg = NULL;
  double* db = NULL;
  const int64_t params = p->affine_mode == GNV_AFFINE_PER_SAMPLE ? d.N * d.C : d.C;
  if (p->affine) {
    dg = calloc((size_t)params, sizeof *dg);
    db = calloc((size_t)params, sizeof *db);
    if (!dg || !db) {
      free(dg), free(db);
      snprintf(msg, msg_size, "out of memory");
      return GNV_ERR_INTERNAL;
    }
  }
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t g = 0; g < d.G; ++g) {
      const double mean = get(a->mean, n * d.G + g), rstd = get(a->rstd, n * d.G + g);
      double s1 = 0, s2 = 0; /* sums of dxhat and dxhat * xhat */
      /* dy of the value before the epilogue: dy silu'(v) with SiLU, else dy. */
#define DY_BEFORE()                                                                                \
  (p->epilogue == GNV_EPILOGUE_SILU                                                                \
       ? get(a->dy, at(a->dy, r, n, c, dd, hh, ww)) * silu_grad(affine_of(p, a->gamma, a->beta, n, c, xhat)) \
       : get(a->dy, at(a->dy, r, n, c, dd, hh, ww)))
      FOR_GROUP(a->x, r, d, n, g, o, {
        const double xhat = (get(a->x, o) - mean) * rstd;
        const double dyv = DY_BEFORE();
        const double dxhat = p->affine ? dyv * get(a->gamma, param(p, n, c)) : dyv;
        s1 += dxhat;
        s2 += dxhat * xhat;
        if (p->affine) dg[param(p, n, c)] += dyv * xhat, db[param(p, n, c)] += dyv;
      })
      FOR_GROUP(a->x, r, d, n, g, o, {
        const double xhat = (get(a->x, o) - mean) * rstd;
        const double dyv = DY_BEFORE();
        const double dxhat = p->affine ? dyv * get(a->gamma, param(p, n, c)) : dyv;
        set(a->dx, at(a->dx, r, n, c, dd, hh, ww), rstd * (dxhat - s1 / m - xhat * s2 / m));
      })
    }
  if (p->affine) {
    for (int64_t i = 0; i < params; ++i) set(a->dgamma, i, dg[i]), set(a->dbeta, i, db[i]);
    free(dg), free(db);
  }
  return GNV_OK;
}

#ifndef GNV_EXAMPLE_NO_EXPORTS
static const gnv_kernel kernel = {
    sizeof(gnv_kernel),
    "example_c",
    "plain C, two passes, double accumulation",
    "cpu",
    /* f64 too would be reported failing: a plain double sum overflows on inputs near the f64
       limit (stress `huge`) and loses digits on constant groups. That is what gnv is for. */
    GNV_DTYPE_BIT(GNV_DTYPE_F32),
    GNV_LAYOUT_BIT(GNV_LAYOUT_NCHW) | GNV_LAYOUT_BIT(GNV_LAYOUT_NHWC),
    GNV_KERNEL_DETERMINISTIC,
    forward,
    backward,
    GNV_EPILOGUE_BIT(GNV_EPILOGUE_SILU),
    GNV_AFFINE_BIT(GNV_AFFINE_PER_SAMPLE),
};

uint32_t gnv_plugin_abi_version(void) { return GNV_PLUGIN_ABI_VERSION; }
const gnv_kernel* gnv_plugin_kernel(void) { return &kernel; }
#endif
