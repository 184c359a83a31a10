// The scheduler and runtime of the CUDA emulation (cuda_emu.h).
#include "cuda_emu.h"

#include <setjmp.h>
#include <ucontext.h>

#include <memory>
#include <string>
#include <vector>

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace emu {
namespace {

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "cuda emulation: %s\n", why.c_str());
  std::abort();
}

struct Barrier {
  unsigned expected = 0, count = 0;
  uint64_t gen = 0;
};

struct Block {
  std::vector<unsigned char> smem;
  Barrier bar;
  std::vector<Barrier> warp_bars;
  std::vector<uint64_t> warp_slots;
};

// A thread is entered once through makecontext/swapcontext; after that it switches with
// _setjmp/_longjmp, which (unlike swapcontext) make no system call to save the signal mask.
struct Coro {
  ucontext_t ctx;
  jmp_buf buf;
  char* stack = nullptr;
  ThreadState st;
  Block* block = nullptr;
  bool started = false, done = false;
};

struct Cluster {
  std::vector<Block> blocks;
  Barrier bar;
  std::vector<Coro> coros;
  ucontext_t sched;
  jmp_buf sched_buf;
  Coro* current = nullptr;
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  uint64_t events = 0;
};

Cluster* g_cl = nullptr;
constexpr size_t kStack = 128 * 1024;
std::vector<std::unique_ptr<char[]>> g_stacks;  // reused by every launch

void yield() {
  if (!_setjmp(g_cl->current->buf)) _longjmp(g_cl->sched_buf, 1);
}

void resume(Coro& co) {
  g_cl->current = &co;
  threadIdx = co.st.tid;
  blockIdx = co.st.bid;
  blockDim = co.st.bdim;
  gridDim = co.st.gdim;
  if (!_setjmp(g_cl->sched_buf)) {
    if (!co.started) {
      co.started = true;
      swapcontext(&g_cl->sched, &co.ctx);
    } else {
      _longjmp(co.buf, 1);
    }
  }
  g_cl->current = nullptr;
}

void wait(Barrier& b) {
  const uint64_t gen = b.gen;
  ++g_cl->events;
  if (++b.count == b.expected) {
    b.count = 0;
    ++b.gen;
    return;
  }
  while (b.gen == gen) yield();
}

// Never returns: the scheduler context saved when this thread was first entered is stale by now.
void entry() {
  g_cl->body(g_cl->ctx);
  g_cl->current->done = true;
  ++g_cl->events;
  _longjmp(g_cl->sched_buf, 1);
}

void start(Coro& co, Cluster& cl, size_t i, uint3 tid, uint3 bid, dim3 block, dim3 grid, Block* b) {
  co.st.tid = tid;
  co.st.bid = bid;
  co.st.bdim = block;
  co.st.gdim = grid;
  co.block = b;
  while (g_stacks.size() <= i) g_stacks.emplace_back(new char[kStack]);
  co.stack = g_stacks[i].get();
  getcontext(&co.ctx);
  co.ctx.uc_stack.ss_sp = co.stack;
  co.ctx.uc_stack.ss_size = kStack;
  co.ctx.uc_link = &cl.sched;
  makecontext(&co.ctx, entry, 0);
}

Coro& me() {
  if (!g_cl || !g_cl->current) fail("a device function called outside a kernel");
  return *g_cl->current;
}

}  // namespace

unsigned char* dynamic_smem() { return me().block->smem.data(); }
void syncthreads() { wait(me().block->bar); }
void cluster_sync() { wait(g_cl->bar); }
[[noreturn]] void trap() { fail("__trap()"); }

unsigned char* map_rank(const void* p, unsigned rank) {
  Block* mine = me().block;
  const ptrdiff_t off = static_cast<const unsigned char*>(p) - mine->smem.data();
  if (off < 0 || off >= static_cast<ptrdiff_t>(mine->smem.size())) fail("map_shared_rank of a pointer outside shared memory");
  if (rank >= g_cl->blocks.size()) fail("map_shared_rank: rank " + std::to_string(rank) + " outside the cluster");
  return g_cl->blocks[rank].smem.data() + off;
}

uint64_t shfl_down_bits(uint64_t bits, int off) {
  Coro& c = me();
  Block* b = c.block;
  const unsigned t = c.st.tid.x, w = t / 32, lane = t % 32;
  uint64_t* slots = &b->warp_slots[w * 32];
  slots[lane] = bits;
  wait(b->warp_bars[w]);
  const unsigned src = lane + static_cast<unsigned>(off);
  if (src < 32 && src >= b->warp_bars[w].expected) fail("shuffle from an inactive lane of a partial warp");
  const uint64_t r = src < 32 ? slots[src] : bits;
  wait(b->warp_bars[w]);
  return r;
}

void run_grid(dim3 grid, dim3 block, size_t smem, unsigned cluster, void (*body)(void*), void* ctx) {
  if (g_cl) fail("a kernel launched from a kernel");
  const unsigned T = block.x, nw = (T + 31) / 32;
  for (unsigned c0 = 0; c0 < grid.x; c0 += cluster) {
    Cluster cl;
    cl.body = body;
    cl.ctx = ctx;
    cl.blocks.resize(cluster);
    for (Block& b : cl.blocks) {
      b.smem.assign(smem + 16, 0xff);
      b.bar.expected = T;
      b.warp_bars.resize(nw);
      for (unsigned w = 0; w < nw; ++w) b.warp_bars[w].expected = std::min(32u, T - 32 * w);
      b.warp_slots.assign(32 * nw, 0);
    }
    cl.bar.expected = T * cluster;
    cl.coros.resize(static_cast<size_t>(T) * cluster);
    for (size_t i = 0; i < cl.coros.size(); ++i) {
      const unsigned r = static_cast<unsigned>(i / T), t = static_cast<unsigned>(i % T);
      start(cl.coros[i], cl, i, uint3{t, 0, 0}, uint3{c0 + r, 0, 0}, block, grid, &cl.blocks[r]);
    }
    g_cl = &cl;
    for (;;) {
      bool all_done = true;
      const uint64_t before = cl.events;
      for (Coro& co : cl.coros) {
        if (co.done) continue;
        all_done = false;
        resume(co);
      }
      if (all_done) break;
      if (cl.events == before) fail("deadlock: some threads wait at a barrier that others never reach");
    }
    g_cl = nullptr;
  }
}

}  // namespace emu

// ---- runtime API ----------------------------------------------------------------------------------
namespace {
cudaError_t g_last = cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "CPU emulation of an sm_90 device");
  p->multiProcessorCount = 132;  // plan as on an H100, so the emulator runs the plans the GPU runs
  p->major = 9;
  p->minor = 0;
  p->l2CacheSize = 50 << 20;
  return cudaSuccess;
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = g_last;
  g_last = cudaSuccess;
  return e;
}
const char* cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : "cudaErrorEmulated"; }
const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "error (emulation)"; }
cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = std::malloc(bytes ? bytes : 1);
  if (!*p) return g_last = cudaErrorMemoryAllocation;
  std::memset(*p, 0xff, bytes);
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int) { return cudaSuccess; }
cudaError_t cudaOccupancyMaxActiveClusters(int* n, const void*, const cudaLaunchConfig_t* cfg) {
  unsigned k = 1;
  for (unsigned i = 0; i < cfg->numAttrs; ++i)
    if (cfg->attrs[i].id == cudaLaunchAttributeClusterDimension) k = cfg->attrs[i].val.clusterDim.x;
  *n = k <= 16 ? 1 : 0;
  return cudaSuccess;
}
