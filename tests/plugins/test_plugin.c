/* Deliberately broken plugins for tests/cli_test.sh and tests/CMakeLists.txt: one source, one
 * library per GNV_TEST_MODE. The arithmetic is the example plugin's (adapters/example_plugin.c). */
#define GNV_EXAMPLE_NO_EXPORTS
#include "../../adapters/example_plugin.c"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#define MODE_OK 0
#define MODE_CRASH 1      /* channels-last forward: SIGSEGV */
#define MODE_HANG 2       /* channels-last forward: never returns */
#define MODE_ABI 3        /* reports ABI version 99 */
#define MODE_MISSING 4    /* does not export gnv_plugin_kernel */
#define MODE_NULLFWD 5    /* forward pointer is null */
#define MODE_WRONG 6      /* one-pass f32 variance: wrong on offset inputs */
#define MODE_EXIT 7       /* channels-last forward: exit(3) */
#define MODE_STATUS 8     /* channels-last forward: returns GNV_ERR_UNSUPPORTED */
#define MODE_UNWRITTEN 9  /* never writes the last element of y */
#define MODE_LOADCRASH 10 /* gnv_plugin_kernel() itself crashes */
#define MODE_BWDCRASH 11  /* backward: SIGABRT */
#define MODE_NANUNWRITTEN 12 /* never writes one element of y where x is NaN (a NaN group) */
#define MODE_SEQFLOAT 13  /* two-pass statistics with sequential f32 sums: a sequential-budget kernel */
#define MODE_CTORCRASH 14 /* its constructor crashes on every load but the first ($GNV_TEST_STATE/loaded) */
#define MODE_CHATTY 15    /* forward prints 1000 lines to stdout */
#define MODE_GRANDCHILD 16 /* forward leaves a sleeping grandchild ($GNV_TEST_STATE/grandchild.pid) */
#define MODE_OVERRUN 17   /* channels-last forward writes 64 floats past the end of y */
#define MODE_HOG 18       /* forward allocates and touches 2 GiB first */
#define MODE_FRESH 19     /* forward fails unless its process is a freshly executed plugin host */
#define MODE_V1 20        /* an ABI version 1 plugin: version 1, a version 1 struct_size, no fused forms */

#include <stdlib.h>
#include <sys/stat.h>

#if GNV_TEST_MODE == MODE_CTORCRASH
__attribute__((constructor)) static void crash_on_reload(void) {
  const char* dir = getenv("GNV_TEST_STATE");
  if (!dir) return;
  char path[4096];
  snprintf(path, sizeof path, "%s/loaded", dir);
  struct stat st;
  if (stat(path, &st) == 0) raise(SIGSEGV);
  FILE* f = fopen(path, "w");
  if (f) fclose(f);
}
#endif

/* unused in the modes that never hand out the kernel (MISSING, NULLFWD) */
__attribute__((unused)) static int32_t test_forward(const gnv_forward_args* a, char* msg, size_t msg_size) {
  const int nhwc = a->problem->layout == GNV_LAYOUT_NHWC;
#if GNV_TEST_MODE == MODE_CRASH
  if (nhwc) {
    volatile int* p = NULL;
    *p = 1;
  }
#elif GNV_TEST_MODE == MODE_HANG
  if (nhwc)
    for (;;) pause();
#elif GNV_TEST_MODE == MODE_EXIT
  if (nhwc) exit(3);
#elif GNV_TEST_MODE == MODE_STATUS
  if (nhwc) {
    snprintf(msg, msg_size, "channels-last is not supported by this test kernel");
    return GNV_ERR_UNSUPPORTED;
  }
#elif GNV_TEST_MODE == MODE_CHATTY
  for (int i = 0; i < 1000; ++i) printf("chatty plugin line %d\n", i);
#elif GNV_TEST_MODE == MODE_GRANDCHILD
  if (fork() == 0) {
    const char* dir = getenv("GNV_TEST_STATE");
    if (dir) {
      char path[4096];
      snprintf(path, sizeof path, "%s/grandchild.pid", dir);
      FILE* f = fopen(path, "a");
      if (f) {
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
      }
    }
    sleep(120);
    _exit(0);
  }
#elif GNV_TEST_MODE == MODE_HOG
  {
    const size_t n = (size_t)2 << 30;
    char* p = malloc(n);
    if (!p) {
      snprintf(msg, msg_size, "could not allocate 2 GiB");
      return GNV_ERR_INTERNAL;
    }
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
    free(p);
  }
#elif GNV_TEST_MODE == MODE_FRESH
  {
    /* A call's process is the host program executed afresh (`gnv --gnv-plugin-call FD`), never a
     * fork() of gnv's multi-threaded process, which may not run a plugin's code. */
    char cmd[256] = {0};
    FILE* f = fopen("/proc/self/cmdline", "rb");
    const size_t n = f ? fread(cmd, 1, sizeof cmd - 1, f) : 0;
    if (f) fclose(f);
    const size_t first = strnlen(cmd, n);
    if (first + 1 >= n || strcmp(cmd + first + 1, "--gnv-plugin-call") != 0) {
      snprintf(msg, msg_size, "this call runs in a process that is not a freshly executed plugin host");
      return GNV_ERR_INTERNAL;
    }
  }
#endif
  (void)nhwc;
  int32_t st = forward(a, msg, msg_size);
#if GNV_TEST_MODE == MODE_OVERRUN
  if (nhwc && a->y->dtype == GNV_DTYPE_F32) {
    int64_t n = 1;
    for (int i = 0; i < a->y->rank; ++i) n *= a->y->shape[i];
    for (int i = 0; i < 64; ++i) ((float*)a->y->data)[n + i] = 1.0f;
  }
#endif
#if GNV_TEST_MODE == MODE_WRONG || GNV_TEST_MODE == MODE_SEQFLOAT
  /* WRONG: redo the statistics the textbook one-pass way in f32: E[x^2] - E[x]^2 cancels at
   * offsets. SEQFLOAT: two passes, each a sequential f32 sum, stable but with sqrt(L) growth. */
  {
    const gnv_problem* p = a->problem;
    const dims d = dims_of(p);
    const int r = p->spatial_rank;
    const float m = (float)(d.cpg * d.D * d.H * d.W);
    for (int64_t n = 0; n < d.N; ++n)
      for (int64_t g = 0; g < d.G; ++g) {
        float s = 0, q = 0;
#if GNV_TEST_MODE == MODE_WRONG
        FOR_GROUP(a->x, r, d, n, g, o, {
          const float v = (float)get(a->x, o);
          s += v;
          q += v * v;
        })
        const float mean = s / m;
        float var = q / m - mean * mean;
        if (var < 0) var = 0;
#else
        FOR_GROUP(a->x, r, d, n, g, o, { s += (float)get(a->x, o); })
        const float mean = s / m;
        FOR_GROUP(a->x, r, d, n, g, o, {
          const float t = (float)get(a->x, o) - mean;
          q += t * t;
        })
        const float var = q / m;
#endif
        const float rstd = 1.0f / sqrtf(var + (float)p->eps);
        set(a->mean, n * d.G + g, mean);
        set(a->rstd, n * d.G + g, rstd);
        FOR_GROUP(a->x, r, d, n, g, o, {
          double v = ((float)get(a->x, o) - mean) * rstd;
          if (p->affine) v = v * get(a->gamma, c) + get(a->beta, c);
          set(a->y, at(a->y, r, n, c, dd, hh, ww), v);
          (void)o;
        })
      }
  }
#endif
  return st;
}

#if GNV_TEST_MODE == MODE_UNWRITTEN
/* Saves the poisoned last element of y before the real kernel runs and puts it back after. */
static int32_t unwritten_forward(const gnv_forward_args* a, char* msg, size_t msg_size) {
  const gnv_buffer* y = a->y;
  int64_t last = 0;
  for (int i = 0; i < y->rank; ++i) last += (y->shape[i] - 1) * y->strides[i];
  const size_t es = y->dtype == GNV_DTYPE_F64 ? 8 : 4;
  unsigned char saved[8];
  memcpy(saved, (unsigned char*)y->data + last * (int64_t)es, es);
  const int32_t st = test_forward(a, msg, msg_size);
  memcpy((unsigned char*)y->data + last * (int64_t)es, saved, es);
  return st;
}
#define FORWARD unwritten_forward
#elif GNV_TEST_MODE == MODE_NANUNWRITTEN
/* Leaves y alone at the first element whose x is NaN: its whole group's exact output is NaN, so
 * the poison there looks like a written NaN unless gnv runs it again on another poison. */
static int32_t nan_unwritten_forward(const gnv_forward_args* a, char* msg, size_t msg_size) {
  const gnv_buffer* x = a->x;
  const gnv_buffer* y = a->y;
  int64_t n = 1;
  for (int i = 0; i < x->rank; ++i) n *= x->shape[i];
  const size_t es = x->dtype == GNV_DTYPE_F64 ? 8 : 4;
  int64_t at_nan = -1;
  for (int64_t i = 0; i < n && at_nan < 0; ++i) { /* dense buffers: x and y share offsets */
    double v;
    if (es == 8) memcpy(&v, (unsigned char*)x->data + i * 8, 8);
    else { float f; memcpy(&f, (unsigned char*)x->data + i * 4, 4); v = f; }
    if (v != v) at_nan = i;
  }
  unsigned char saved[8];
  if (at_nan >= 0) memcpy(saved, (unsigned char*)y->data + at_nan * (int64_t)es, es);
  const int32_t st = test_forward(a, msg, msg_size);
  if (at_nan >= 0) memcpy((unsigned char*)y->data + at_nan * (int64_t)es, saved, es);
  return st;
}
#define FORWARD nan_unwritten_forward
#else
#define FORWARD test_forward
#endif

static int32_t test_backward(const gnv_backward_args* a, char* msg, size_t msg_size) {
#if GNV_TEST_MODE == MODE_BWDCRASH
  abort();
#endif
  return backward(a, msg, msg_size);
}

__attribute__((unused)) static const gnv_kernel test_kernel = {
#if GNV_TEST_MODE == MODE_V1
    GNV_KERNEL_V1_SIZE,
#else
    sizeof(gnv_kernel),
#endif
    GNV_TEST_NAME,
    "test plugin",
    "cpu",
    GNV_DTYPE_BIT(GNV_DTYPE_F32) | GNV_DTYPE_BIT(GNV_DTYPE_F64),
    GNV_LAYOUT_BIT(GNV_LAYOUT_NCHW) | GNV_LAYOUT_BIT(GNV_LAYOUT_NHWC),
    GNV_KERNEL_DETERMINISTIC,
#if GNV_TEST_MODE == MODE_NULLFWD
    NULL,
#else
    FORWARD,
#endif
    test_backward,
#if GNV_TEST_MODE == MODE_V1
    0, 0, /* past GNV_KERNEL_V1_SIZE: a version 1 plugin has no such fields, and gnv does not read them */
#else
    GNV_EPILOGUE_BIT(GNV_EPILOGUE_SILU),
    GNV_AFFINE_BIT(GNV_AFFINE_PER_SAMPLE),
#endif
};

uint32_t gnv_plugin_abi_version(void) {
#if GNV_TEST_MODE == MODE_ABI
  return 99;
#elif GNV_TEST_MODE == MODE_V1
  return 1;
#else
  return GNV_PLUGIN_ABI_VERSION;
#endif
}

#if GNV_TEST_MODE != MODE_MISSING
const gnv_kernel* gnv_plugin_kernel(void) {
#if GNV_TEST_MODE == MODE_LOADCRASH
  raise(SIGSEGV);
#endif
  return &test_kernel;
}
#endif
