// The plugin host: loads a gnv/plugin.h library, checks what it claims, and runs each call in a
// child process of its own. The child is forked and at once executes the host program again
// (`gnv --gnv-plugin-call FD`), so it starts from a fresh image: a fork() of gnv's
// multi-threaded process may only run async-signal-safe code before exec, and a child that ran
// the plugin right after fork() could deadlock on a lock (an allocator's) that another of gnv's
// threads held at the time. The call's inputs, its outputs (poisoned before the call, each
// followed by a guard region) and the answer live in one memfd both processes map.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "gnv/check.h"
#include "gnv/external.h"
#include "gnv/plugin.h"
#include "process.h"

namespace gnv {

namespace {

using external::ChildEnd;
using external::SharedRegion;

// The host program's hidden first argument, and the descriptor its region arrives on.
constexpr const char* kCallFlag = "--gnv-plugin-call";
constexpr int kRegionFd = 3;
constexpr uint64_t kMagic = 0x676e762d706c7567ull;  // "gnv-plug"

enum class Op : int32_t { describe = 1, forward = 2, backward = 3 };

// Buffer slots of a call. forward: x, gamma, beta | y, mean, rstd; backward: dy, x, mean, rstd,
// gamma | dx, dgamma, dbeta | beta.
constexpr int kSlots = 9;

// What the parent asks, at the head of the region.
struct Request {
  uint64_t magic = kMagic;
  uint64_t size = 0;  // of the whole region
  Op op = Op::describe;
  char path[4096] = {};
  gnv_problem problem{};
  gnv_buffer buffers[kSlots] = {};  // data: null in the region; the child points it at offset[i]
  uint64_t offset[kSlots] = {};     // 0: no such buffer
  uint64_t bytes[kSlots] = {};
};

// What the child answers.
struct Answer {
  int32_t returned = 0;    // 1 once the plugin function returned
  int32_t status = 0;
  int32_t exec_errno = 0;  // the exec of the host program failed with this errno
  char msg[2048] = {};
};

// The kernel's description, copied out by the describe call (the parent never loads the library).
struct KernelInfo {
  char name[72] = {};
  char device[64] = {};
  char summary[512] = {};
  uint32_t dtypes = 0, layouts = 0, flags = 0;
  uint32_t epilogues = 0, affine_modes = 0;  // 0 for a version 1 plugin
  int32_t has_backward = 0;
};

struct Head {
  Request req;
  Answer answer;
  KernelInfo info;
};

// Bytes after each output buffer, filled with a pattern and checked after the call: a kernel that
// writes past its output is caught when the write is this small (a larger one may crash instead).
constexpr size_t kGuardBytes = 4096;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif
constexpr unsigned char kGuardByte = 0xA5;
constexpr size_t kAlign = 64;
size_t aligned(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

std::mutex host_mu;
std::string host_program;  // set_plugin_host(); empty: none

// How a call ended, in words: a SIGKILL gnv did not send is most often the kernel's OOM killer.
std::string ended(const ChildEnd& end) {
  if (end.signaled && end.signal == SIGKILL)
    return "was killed by SIGKILL, which gnv did not send: out of memory (the kernel's OOM killer) or killed from outside";
  return "crashed: " + signal_description(end.signal);
}

bool valid_name(const char* s) {
  if (!s || !*s) return false;
  for (const char* p = s; *p; ++p)
    if (!(std::isalnum(static_cast<unsigned char>(*p)) || std::strchr("_.+-", *p))) return false;
  return std::strlen(s) <= 64;
}

// Looks the two symbols up and checks the kernel description. Empty string: fine. *version is the
// plugin's ABI version.
std::string check_plugin(void* handle, const std::string& path, const gnv_kernel** out, uint32_t* version) {
  auto* abi = reinterpret_cast<gnv_plugin_abi_version_fn>(dlsym(handle, GNV_PLUGIN_ABI_VERSION_SYMBOL));
  auto* get = reinterpret_cast<gnv_plugin_kernel_fn>(dlsym(handle, GNV_PLUGIN_KERNEL_SYMBOL));
  for (auto [sym, name] : {std::pair{reinterpret_cast<void*>(abi), GNV_PLUGIN_ABI_VERSION_SYMBOL},
                           std::pair{reinterpret_cast<void*>(get), GNV_PLUGIN_KERNEL_SYMBOL}})
    if (!sym)
      return fmt::format("{}: missing symbol {} (a gnv plugin exports {} and {} with C linkage; see "
                         "include/gnv/plugin.h)",
                         path, name, GNV_PLUGIN_ABI_VERSION_SYMBOL, GNV_PLUGIN_KERNEL_SYMBOL);
  const uint32_t v = abi();
  if (v < GNV_PLUGIN_ABI_VERSION_MIN || v > GNV_PLUGIN_ABI_VERSION)
    return fmt::format("{}: plugin ABI version {}, this gnv speaks versions {} to {} (rebuild the plugin against "
                       "this gnv's include/gnv/plugin.h)",
                       path, v, GNV_PLUGIN_ABI_VERSION_MIN, GNV_PLUGIN_ABI_VERSION);
  const gnv_kernel* k = get();
  if (!k) return fmt::format("{}: {}() returned a null kernel", path, GNV_PLUGIN_KERNEL_SYMBOL);
  const size_t need = v >= 2 ? sizeof(gnv_kernel) : GNV_KERNEL_V1_SIZE;
  if (k->struct_size < need)
    return fmt::format("{}: gnv_kernel.struct_size is {}, expected at least {} for ABI version {}", path,
                       k->struct_size, need, v);
  if (!valid_name(k->name))
    return fmt::format("{}: gnv_kernel.name must be 1 to 64 characters of [A-Za-z0-9_.+-]", path);
  const std::string kn = k->name;
  if (k->dtypes == 0 || (k->dtypes & ~0xFu))
    return fmt::format("{}: kernel '{}': gnv_kernel.dtypes {:#x} is not a non-empty set of GNV_DTYPE_BIT()s",
                       path, kn, k->dtypes);
  if (k->layouts == 0 || (k->layouts & ~0x3u))
    return fmt::format("{}: kernel '{}': gnv_kernel.layouts {:#x} is not a non-empty set of GNV_LAYOUT_BIT()s",
                       path, kn, k->layouts);
  if (v >= 2 && (k->epilogues & ~GNV_EPILOGUE_BIT(GNV_EPILOGUE_SILU) & ~GNV_EPILOGUE_BIT(GNV_EPILOGUE_NONE)))
    return fmt::format("{}: kernel '{}': gnv_kernel.epilogues {:#x} has bits that are not GNV_EPILOGUE_BIT()s", path,
                       kn, k->epilogues);
  if (v >= 2 && (k->affine_modes & ~GNV_AFFINE_BIT(GNV_AFFINE_PER_SAMPLE) & ~GNV_AFFINE_BIT(GNV_AFFINE_PER_CHANNEL)))
    return fmt::format("{}: kernel '{}': gnv_kernel.affine_modes {:#x} has bits that are not GNV_AFFINE_BIT()s",
                       path, kn, k->affine_modes);
  if (!k->forward) return fmt::format("{}: kernel '{}': the forward function pointer is null", path, kn);
  *out = k;
  *version = v;
  return {};
}

int32_t abi_dtype(DType d) {
  switch (d) {
    case DType::f64: return GNV_DTYPE_F64;
    case DType::f32: return GNV_DTYPE_F32;
    case DType::f16: return GNV_DTYPE_F16;
    case DType::bf16: return GNV_DTYPE_BF16;
  }
  return -1;
}

gnv_problem abi_problem(const Problem& p) {
  gnv_problem q{};
  q.N = p.N;
  q.C = p.C;
  q.G = p.G;
  q.spatial_rank = static_cast<int32_t>(p.spatial.size());
  for (size_t i = 0; i < p.spatial.size() && i < 3; ++i) q.spatial[i] = p.spatial[i];
  q.eps = p.eps;
  q.affine = p.affine ? 1 : 0;
  q.dtype = abi_dtype(p.dtype);
  q.layout = p.layout == Layout::nchw ? GNV_LAYOUT_NCHW : GNV_LAYOUT_NHWC;
  q.epilogue = p.epilogue == Epilogue::silu ? GNV_EPILOGUE_SILU : GNV_EPILOGUE_NONE;
  q.affine_mode = p.per_sample() ? GNV_AFFINE_PER_SAMPLE : GNV_AFFINE_PER_CHANNEL;
  return q;
}

// A buffer over data with the logical shape of x (N, C, *spatial) in the problem's layout.
gnv_buffer x_buffer(const Problem& p, DType d, void* data) {
  gnv_buffer b{};
  b.data = data;
  b.dtype = abi_dtype(d);
  b.rank = static_cast<int32_t>(2 + p.spatial.size());
  b.shape[0] = p.N;
  b.shape[1] = p.C;
  for (size_t i = 0; i < p.spatial.size(); ++i) b.shape[2 + i] = p.spatial[i];
  if (p.layout == Layout::nchw) {
    int64_t s = 1;
    for (int i = b.rank - 1; i >= 0; --i) {
      b.strides[i] = s;
      s *= b.shape[i];
    }
  } else {  // (N, *spatial, C) in memory
    b.strides[1] = 1;
    int64_t s = p.C;
    for (int i = b.rank - 1; i >= 2; --i) {
      b.strides[i] = s;
      s *= b.shape[i];
    }
    b.strides[0] = s;
  }
  return b;
}

gnv_buffer dense_buffer(DType d, std::vector<int64_t> shape, void* data) {
  gnv_buffer b{};
  b.data = data;
  b.dtype = abi_dtype(d);
  b.rank = static_cast<int32_t>(shape.size());
  int64_t s = 1;
  for (int i = b.rank - 1; i >= 0; --i) {
    b.shape[i] = shape[static_cast<size_t>(i)];
    b.strides[i] = s;
    s *= b.shape[i];
  }
  return b;
}

const char* status_name(int32_t s) {
  switch (s) {
    case GNV_ERR_UNSUPPORTED: return "GNV_ERR_UNSUPPORTED";
    case GNV_ERR_INVALID: return "GNV_ERR_INVALID";
    case GNV_ERR_INTERNAL: return "GNV_ERR_INTERNAL";
  }
  return "an unknown status";
}

// One buffer of a call: its shape and strides, and the parent's memory it is copied from (inputs
// and the poisoned outputs) and, for outputs, back into.
struct Slot {
  gnv_buffer b{};  // b.data: the parent's tensor; null: no such buffer
  size_t bytes = 0;
  bool output = false;
  const char* name = "";
  size_t offset = 0;  // in the region
};

Slot input(gnv_buffer b, const Tensor* t) { return {t ? b : gnv_buffer{}, t ? t->nbytes() : 0, false, ""}; }
Slot output(gnv_buffer b, Tensor* t, const char* name) { return {t ? b : gnv_buffer{}, t ? t->nbytes() : 0, true, name}; }

// One call in a child process: the region with the request and the buffers, the child's run, and
// what it left.
class Call {
 public:
  Call(Op op, const std::string& path, const gnv_problem& q, std::vector<Slot> slots) : slots_(std::move(slots)) {
    size_t total = aligned(sizeof(Head));
    for (Slot& s : slots_) {
      s.offset = total;
      total += s.b.data ? aligned(s.bytes) + (s.output ? kGuardBytes : 0) : 0;
    }
    region_ = std::make_unique<SharedRegion>(total);
    Head& h = *new (region_->data()) Head();
    if (path.size() >= sizeof h.req.path)
      throw ExternalError(fmt::format("{}: the plugin's path is longer than {} bytes", path, sizeof h.req.path - 1));
    std::memcpy(h.req.path, path.data(), path.size());
    h.req.op = op;
    h.req.size = total;
    h.req.problem = q;
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Slot& s = slots_[i];
      if (!s.b.data) continue;
      std::memcpy(region_->data() + s.offset, s.b.data, s.bytes);
      if (s.output) std::memset(region_->data() + s.offset + s.bytes, kGuardByte, guard_size(s));
      h.req.buffers[i] = s.b;
      h.req.buffers[i].data = nullptr;
      h.req.offset[i] = s.offset;
      h.req.bytes[i] = s.bytes;
    }
  }
  Head& head() const { return *reinterpret_cast<Head*>(region_->data()); }

  // Runs the call in a child in a process group of its own, with its stdout and stderr appended to
  // the plugin's log and its address space limited; waits at most timeout_s and then kills the
  // whole group, so grandchildren a plugin started do not outlive the call. Between fork and exec
  // the child makes system calls only.
  ChildEnd run(const PluginOptions& o) const {
    const std::string host = plugin_host();
    if (host.empty())
      throw ExternalError("plugins need a host program (gnv itself): this process did not name one "
                          "(gnv::set_plugin_host)");
    const int log = o.log.empty() ? -1 : open(o.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (!o.log.empty() && log < 0)
      throw ExternalError(fmt::format("{}: cannot open the plugin log: {}", o.log.string(), std::strerror(errno)));
    char fd_arg[16];
    std::snprintf(fd_arg, sizeof fd_arg, "%d", kRegionFd);
    char* const argv[] = {const_cast<char*>("gnv-plugin-call"), const_cast<char*>(kCallFlag), fd_arg, nullptr};
    const rlimit lim{static_cast<rlim_t>(o.memory_bytes), static_cast<rlim_t>(o.memory_bytes)};
    const bool limit = o.memory_bytes > 0 && !kAddressSanitizer;  // ASan's shadow alone is terabytes of address space
    Answer& answer = head().answer;
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) {
      if (log >= 0) close(log);
      throw std::runtime_error(fmt::format("fork failed: {}", std::strerror(errno)));
    }
    if (pid == 0) {
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // gnv killed: its children go too
      if (log >= 0) {
        dup2(log, STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
      }
      // dup2 clears close-on-exec on the copy; on the same descriptor it does nothing.
      if (region_->fd() == kRegionFd)
        fcntl(kRegionFd, F_SETFD, 0);
      else
        dup2(region_->fd(), kRegionFd);
      if (limit) setrlimit(RLIMIT_AS, &lim);
      execv(host.c_str(), argv);
      answer.exec_errno = errno;
      _exit(127);
    }
    if (log >= 0) close(log);
    setpgid(pid, pid);  // also here: no window in which a kill of the group misses the child
    ChildEnd end = external::wait_child(pid, o.timeout_s, true);
    kill(-pid, SIGKILL);  // what the call left running in its group
    if (answer.exec_errno != 0)
      throw ExternalError(fmt::format("cannot run the plugin host program {}: {}", host, std::strerror(answer.exec_errno)));
    answer.msg[sizeof answer.msg - 1] = '\0';
    return end;
  }

  // Names the first output whose guard region changed, or "".
  std::string overrun() const {
    for (const Slot& s : slots_) {
      if (!s.b.data || !s.output) continue;
      const auto* g = reinterpret_cast<const unsigned char*>(region_->data() + s.offset + s.bytes);
      size_t changed = 0;
      for (size_t k = 0; k < guard_size(s); ++k) changed += g[k] != kGuardByte;
      if (changed) return fmt::format("{} ({} of the {} bytes after it changed)", s.name, changed, guard_size(s));
    }
    return "";
  }
  void copy_back() const {
    for (const Slot& s : slots_)
      if (s.b.data && s.output) std::memcpy(s.b.data, region_->data() + s.offset, s.bytes);
  }

 private:
  static size_t guard_size(const Slot& s) { return aligned(s.bytes) - s.bytes + kGuardBytes; }

  std::vector<Slot> slots_;
  std::unique_ptr<SharedRegion> region_;
};

// In the child: loads the library and returns its kernel (checked again: the library on disk may
// have changed), or writes why not into the answer and returns null.
const gnv_kernel* load_in_child(const char* path, Answer& a, uint32_t& version) {
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  std::string msg;
  const gnv_kernel* k = nullptr;
  if (!handle) {
    const char* e = dlerror();
    msg = fmt::format("cannot load plugin: {}", e ? e : path);
  } else {
    msg = check_plugin(handle, path, &k, &version);
  }
  if (!msg.empty()) {
    std::snprintf(a.msg, sizeof a.msg, "%s", msg.c_str());
    a.status = GNV_ERR_INTERNAL;
    a.returned = 1;
    return nullptr;
  }
  return k;
}

// The child's side of a call, in the freshly executed host program. Exit status 3: the region is
// not one a parent gnv wrote (the host program was run by hand).
int serve_call(const char* fd_arg) {
  char* end = nullptr;
  const long fd = std::strtol(fd_arg, &end, 10);
  struct stat st{};
  if (end == fd_arg || *end != '\0' || fd < 0 || fstat(static_cast<int>(fd), &st) != 0 ||
      static_cast<size_t>(st.st_size) < sizeof(Head))
    return 3;
  const size_t size = static_cast<size_t>(st.st_size);
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, static_cast<int>(fd), 0);
  if (p == MAP_FAILED) return 3;
  close(static_cast<int>(fd));
  auto* base = static_cast<std::byte*>(p);
  Head& h = *reinterpret_cast<Head*>(base);
  Request& r = h.req;
  if (r.magic != kMagic || r.size != size) return 3;
  r.path[sizeof r.path - 1] = '\0';
  gnv_buffer* b = r.buffers;
  for (int i = 0; i < kSlots; ++i) {
    if (r.offset[i] == 0) continue;
    if (r.offset[i] > size || r.bytes[i] > size - r.offset[i]) return 3;
    b[i].data = base + r.offset[i];
  }
  auto opt = [&](int i) { return r.offset[i] ? &b[i] : nullptr; };
  Answer& a = h.answer;
  uint32_t version = 0;
  const gnv_kernel* k = load_in_child(r.path, a, version);
  if (!k) return 0;
  switch (r.op) {
    case Op::describe: {
      KernelInfo& info = h.info;
      std::snprintf(info.name, sizeof info.name, "%s", k->name);
      std::snprintf(info.device, sizeof info.device, "%s", k->device ? k->device : "");
      std::snprintf(info.summary, sizeof info.summary, "%s", k->summary ? k->summary : "");
      info.dtypes = k->dtypes;
      info.layouts = k->layouts;
      info.flags = k->flags;
      if (version >= 2) {
        info.epilogues = k->epilogues;
        info.affine_modes = k->affine_modes;
      }
      info.has_backward = k->backward != nullptr;
      a.status = 0;
      break;
    }
    case Op::forward: {
      const gnv_forward_args args{&r.problem, &b[0], opt(1), opt(2), &b[3], &b[4], &b[5]};
      a.status = k->forward(&args, a.msg, sizeof a.msg - 1);
      break;
    }
    case Op::backward: {
      if (!k->backward) {
        std::snprintf(a.msg, sizeof a.msg, "the library no longer has a backward function");
        a.status = GNV_ERR_INTERNAL;
        break;
      }
      const gnv_backward_args args{&r.problem, &b[0], &b[1], &b[2], &b[3], opt(4), &b[5], opt(6), opt(7), opt(8)};
      a.status = k->backward(&args, a.msg, sizeof a.msg - 1);
      break;
    }
    default:
      return 3;
  }
  a.returned = 1;
  return 0;
}

class PluginImpl final : public Impl {
 public:
  PluginImpl(std::string path, const KernelInfo& k, const PluginOptions& o)
      : path_(std::move(path)), o_(o), name_(k.name) {
    caps_.dtypes.clear();
    for (DType d : kAllDTypes)
      if (k.dtypes & GNV_DTYPE_BIT(abi_dtype(d))) caps_.dtypes.push_back(d);
    for (Layout l : kAllLayouts)
      if (k.layouts & GNV_LAYOUT_BIT(l == Layout::nchw ? GNV_LAYOUT_NCHW : GNV_LAYOUT_NHWC))
        caps_.layouts.push_back(l);
    if (k.epilogues & GNV_EPILOGUE_BIT(GNV_EPILOGUE_SILU)) caps_.epilogues.push_back(Epilogue::silu);
    caps_.per_sample = (k.affine_modes & GNV_AFFINE_BIT(GNV_AFFINE_PER_SAMPLE)) != 0;
    caps_.forward = true;
    caps_.backward = k.has_backward != 0;
    caps_.device = *k.device ? k.device : "cpu";
    caps_.deterministic = (k.flags & GNV_KERNEL_DETERMINISTIC) != 0;
    caps_.summary = fmt::format("plugin {}{}{}", path_, *k.summary ? ": " : "", k.summary);
  }

  std::string_view name() const override { return name_; }
  Capabilities capabilities() const override { return caps_; }

  void forward(const ForwardArgs& a) const override {
    const Problem& p = a.p;
    const DType acc = acc_dtype(p.dtype);
    auto in = [&](const Tensor* t) { return t ? const_cast<void*>(t->raw()) : nullptr; };
    const Call call(Op::forward, path_, abi_problem(p),
                    {input(x_buffer(p, p.dtype, in(&a.x)), &a.x),
                     input(dense_buffer(p.dtype, p.param_shape(), in(a.gamma)), a.gamma),
                     input(dense_buffer(p.dtype, p.param_shape(), in(a.beta)), a.beta),
                     output(x_buffer(p, p.dtype, a.y.raw()), &a.y, "y"),
                     output(dense_buffer(acc, p.stats_shape(), a.mean.raw()), &a.mean, "mean"),
                     output(dense_buffer(acc, p.stats_shape(), a.rstd.raw()), &a.rstd, "rstd")});
    finish("forward", call);
  }

  void backward(const BackwardArgs& a) const override {
    if (!caps_.backward) throw std::logic_error(fmt::format("{} has no backward pass", name_));
    const Problem& p = a.p;
    const DType acc = acc_dtype(p.dtype);
    auto in = [&](const Tensor* t) { return t ? const_cast<void*>(t->raw()) : nullptr; };
    auto out = [&](Tensor* t) { return t ? t->raw() : nullptr; };
    const Call call(Op::backward, path_, abi_problem(p),
                    {input(x_buffer(p, p.dtype, in(&a.dy)), &a.dy), input(x_buffer(p, p.dtype, in(&a.x)), &a.x),
                     input(dense_buffer(acc, p.stats_shape(), in(&a.mean)), &a.mean),
                     input(dense_buffer(acc, p.stats_shape(), in(&a.rstd)), &a.rstd),
                     input(dense_buffer(p.dtype, p.param_shape(), in(a.gamma)), a.gamma),
                     output(x_buffer(p, p.dtype, a.dx.raw()), &a.dx, "dx"),
                     output(dense_buffer(p.dtype, p.param_shape(), out(a.dgamma)), a.dgamma, "dgamma"),
                     output(dense_buffer(p.dtype, p.param_shape(), out(a.dbeta)), a.dbeta, "dbeta"),
                     input(dense_buffer(p.dtype, p.param_shape(), in(a.beta)), a.beta)});
    finish("backward", call);
  }

 private:
  void finish(const char* pass, const Call& call) const {
    const ChildEnd end = call.run(o_);
    Answer& h = call.head().answer;
    // The message is the plugin's text: no terminal escapes or control bytes reach gnv's output.
    for (char& ch : h.msg)
      if (ch != '\0' && (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)) ch = '?';
    if (end.timed_out)
      throw KernelAborted(Verdict::timeout, fmt::format("plugin {} {} did not return within {:g} s (killed)",
                                                        name_, pass, o_.timeout_s));
    if (end.signaled) throw KernelAborted(Verdict::crash, fmt::format("plugin {} {} {}", name_, pass, ended(end)));
    if (const std::string over = call.overrun(); !over.empty())
      throw KernelAborted(Verdict::crash, fmt::format("plugin {} {} wrote past the end of {}: an out-of-bounds write",
                                                      name_, pass, over));
    if (end.exit_status != 0 || !h.returned)
      throw KernelAborted(Verdict::crash, fmt::format("plugin {} {}: its process exited with status {} before "
                                                      "the call returned",
                                                      name_, pass, end.exit_status));
    if (h.status == GNV_ERR_UNSUPPORTED)
      throw KernelAborted(Verdict::skipped, fmt::format("plugin {} {} declined the case (GNV_ERR_UNSUPPORTED){}{}",
                                                        name_, pass, h.msg[0] ? ": " : "", h.msg));
    if (h.status != GNV_OK)
      throw std::runtime_error(fmt::format("plugin {} {} returned {} ({}){}{}", name_, pass, status_name(h.status),
                                           h.status, h.msg[0] ? ": " : "", h.msg));
    call.copy_back();
  }

  std::string path_;
  PluginOptions o_;
  std::string name_;
  Capabilities caps_;
};

}  // namespace

void set_plugin_host(const std::string& program) {
  std::lock_guard<std::mutex> lk(host_mu);
  host_program = program;
}

std::string plugin_host() {
  std::lock_guard<std::mutex> lk(host_mu);
  return host_program;
}

void serve_plugin_call_if_asked(int argc, char** argv) {
  if (argc != 3 || std::strcmp(argv[1], kCallFlag) != 0) return;
  const int rc = serve_call(argv[2]);
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(rc);  // no exit handlers: the plugin's static state is not gnv's to tear down
}

std::unique_ptr<Impl> load_plugin(const std::string& path_in, const PluginOptions& o) {
  if (!(o.timeout_s > 0)) throw ExternalError(fmt::format("plugin timeout {} s: must be positive", o.timeout_s));
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path_in, ec))
    throw ExternalError(fmt::format("{}: no such plugin file", path_in));
  // dlopen searches the library path for a bare name; a path with a slash is taken as is.
  const std::string path = std::filesystem::absolute(path_in).string();
  // Loading runs the library's constructors and the two entry points: in a child, which copies the
  // kernel's description out. gnv's own process never loads the library.
  const Call call(Op::describe, path, gnv_problem{}, {});
  const ChildEnd end = call.run(o);
  const Answer& h = call.head().answer;
  if (end.timed_out || end.signaled || end.exit_status != 0 || !h.returned)
    throw ExternalError(fmt::format("{}: loading the plugin and querying its kernel {}", path,
                                    end.timed_out ? fmt::format("did not finish within {:g} s", o.timeout_s)
                                    : end.signaled ? ended(end)
                                                   : fmt::format("exited with status {}", end.exit_status)));
  if (h.status != 0) throw ExternalError(h.msg);
  KernelInfo info = call.head().info;
  info.name[sizeof info.name - 1] = info.device[sizeof info.device - 1] = info.summary[sizeof info.summary - 1] = '\0';
  return std::make_unique<PluginImpl>(path, info, o);
}

}  // namespace gnv
