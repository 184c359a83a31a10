// The plugin host: loads a gnv/plugin.h library, checks what it claims, and runs each call in a
// forked child whose output buffers live in shared memory, poisoned before the call.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <new>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <memory>
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

// What a child reports back through the head of its shared region.
struct Header {
  int32_t returned = 0;  // 1 once the plugin function returned
  int32_t status = 0;
  char msg[2048] = {};
};

// The kernel's description, copied out of the probe child (the parent never loads the library).
struct KernelInfo {
  char name[72] = {};
  char device[64] = {};
  char summary[512] = {};
  uint32_t dtypes = 0, layouts = 0, flags = 0;
  int32_t has_backward = 0;
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

// Runs fn in a child process in a process group of its own, with its stdout and stderr appended to
// the plugin's log and its address space limited; the parent waits at most timeout_s and then
// kills the whole group, so grandchildren a plugin started do not outlive the call. The child
// never returns.
template <class F>
ChildEnd run_in_child(F&& fn, const PluginOptions& o) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(fmt::format("fork failed: {}", std::strerror(errno)));
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // gnv killed: its children go too
    const int fd = o.log.empty() ? dup(STDERR_FILENO)
                                 : open(o.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    if (o.memory_bytes > 0 && !kAddressSanitizer) {  // ASan's shadow memory alone is terabytes of address space
      const rlimit lim{static_cast<rlim_t>(o.memory_bytes), static_cast<rlim_t>(o.memory_bytes)};
      setrlimit(RLIMIT_AS, &lim);
    }
    fn();
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(0);
  }
  setpgid(pid, pid);  // also here: no window in which a kill of the group misses the child
  ChildEnd end = external::wait_child(pid, o.timeout_s, true);
  kill(-pid, SIGKILL);  // what the call left running in its group
  return end;
}

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

// Looks the two symbols up and checks the kernel description. Empty string: fine.
std::string check_plugin(void* handle, const std::string& path, const gnv_kernel** out) {
  auto* abi = reinterpret_cast<gnv_plugin_abi_version_fn>(dlsym(handle, GNV_PLUGIN_ABI_VERSION_SYMBOL));
  auto* get = reinterpret_cast<gnv_plugin_kernel_fn>(dlsym(handle, GNV_PLUGIN_KERNEL_SYMBOL));
  for (auto [sym, name] : {std::pair{reinterpret_cast<void*>(abi), GNV_PLUGIN_ABI_VERSION_SYMBOL},
                           std::pair{reinterpret_cast<void*>(get), GNV_PLUGIN_KERNEL_SYMBOL}})
    if (!sym)
      return fmt::format("{}: missing symbol {} (a gnv plugin exports {} and {} with C linkage; see "
                         "include/gnv/plugin.h)",
                         path, name, GNV_PLUGIN_ABI_VERSION_SYMBOL, GNV_PLUGIN_KERNEL_SYMBOL);
  const uint32_t v = abi();
  if (v != GNV_PLUGIN_ABI_VERSION)
    return fmt::format("{}: plugin ABI version {}, this gnv speaks version {} (rebuild the plugin against "
                       "this gnv's include/gnv/plugin.h)",
                       path, v, GNV_PLUGIN_ABI_VERSION);
  const gnv_kernel* k = get();
  if (!k) return fmt::format("{}: {}() returned a null kernel", path, GNV_PLUGIN_KERNEL_SYMBOL);
  if (k->struct_size < sizeof(gnv_kernel))
    return fmt::format("{}: gnv_kernel.struct_size is {}, expected at least {}", path, k->struct_size,
                       sizeof(gnv_kernel));
  if (!valid_name(k->name))
    return fmt::format("{}: gnv_kernel.name must be 1 to 64 characters of [A-Za-z0-9_.+-]", path);
  const std::string kn = k->name;
  if (k->dtypes == 0 || (k->dtypes & ~0xFu))
    return fmt::format("{}: kernel '{}': gnv_kernel.dtypes {:#x} is not a non-empty set of GNV_DTYPE_BIT()s",
                       path, kn, k->dtypes);
  if (k->layouts == 0 || (k->layouts & ~0x3u))
    return fmt::format("{}: kernel '{}': gnv_kernel.layouts {:#x} is not a non-empty set of GNV_LAYOUT_BIT()s",
                       path, kn, k->layouts);
  if (!k->forward) return fmt::format("{}: kernel '{}': the forward function pointer is null", path, kn);
  *out = k;
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

// Output tensors copied into (and back out of) one shared region after the header, each followed
// by a guard region.
class Outputs {
 public:
  explicit Outputs(std::vector<Tensor*> ts) : ts_(std::move(ts)) {
    size_t total = aligned(sizeof(Header));
    for (Tensor* t : ts_) {
      offsets_.push_back(total);
      total += aligned(t ? t->nbytes() : 0) + kGuardBytes;
    }
    region_ = std::make_unique<SharedRegion>(total);
    new (region_->data()) Header();
    for (size_t i = 0; i < ts_.size(); ++i) {
      if (!ts_[i]) continue;
      std::memcpy(region_->data() + offsets_[i], ts_[i]->raw(), ts_[i]->nbytes());  // poisoned
      std::memset(region_->data() + offsets_[i] + ts_[i]->nbytes(), kGuardByte, guard_size(i));
    }
  }
  Header& header() const { return *reinterpret_cast<Header*>(region_->data()); }
  void* data(size_t i) const { return ts_[i] ? region_->data() + offsets_[i] : nullptr; }
  // Names the first output whose guard region changed, or "".
  std::string overrun(const std::vector<const char*>& names) const {
    for (size_t i = 0; i < ts_.size(); ++i) {
      if (!ts_[i]) continue;
      const auto* g = reinterpret_cast<const unsigned char*>(region_->data() + offsets_[i] + ts_[i]->nbytes());
      size_t changed = 0;
      for (size_t k = 0; k < guard_size(i); ++k) changed += g[k] != kGuardByte;
      if (changed) return fmt::format("{} ({} of the {} bytes after it changed)", names[i], changed, guard_size(i));
    }
    return "";
  }
  void copy_back() const {
    for (size_t i = 0; i < ts_.size(); ++i)
      if (ts_[i]) std::memcpy(ts_[i]->raw(), region_->data() + offsets_[i], ts_[i]->nbytes());
  }

 private:
  size_t guard_size(size_t i) const { return aligned(ts_[i]->nbytes()) - ts_[i]->nbytes() + kGuardBytes; }

  std::vector<Tensor*> ts_;
  std::vector<size_t> offsets_;
  std::unique_ptr<SharedRegion> region_;
};

// In a call's child: loads the library and returns its kernel (checked again: the library on disk
// may have changed), or writes why not into h and returns null.
const gnv_kernel* load_in_child(const std::string& path, Header& h) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  std::string msg;
  const gnv_kernel* k = nullptr;
  if (!handle) {
    const char* e = dlerror();
    msg = fmt::format("cannot load plugin: {}", e ? e : path);
  } else {
    msg = check_plugin(handle, path, &k);
  }
  if (!msg.empty()) {
    std::snprintf(h.msg, sizeof h.msg, "%s", msg.c_str());
    h.status = GNV_ERR_INTERNAL;
    h.returned = 1;
    return nullptr;
  }
  return k;
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
    Outputs out({&a.y, &a.mean, &a.rstd});
    const gnv_problem q = abi_problem(p);
    const DType acc = acc_dtype(p.dtype);
    const gnv_buffer x = x_buffer(p, p.dtype, const_cast<void*>(a.x.raw()));
    gnv_buffer gamma{}, beta{};
    if (a.gamma) gamma = dense_buffer(p.dtype, p.channel_shape(), const_cast<void*>(a.gamma->raw()));
    if (a.beta) beta = dense_buffer(p.dtype, p.channel_shape(), const_cast<void*>(a.beta->raw()));
    gnv_buffer y = x_buffer(p, p.dtype, out.data(0));
    gnv_buffer mean = dense_buffer(acc, p.stats_shape(), out.data(1));
    gnv_buffer rstd = dense_buffer(acc, p.stats_shape(), out.data(2));
    const gnv_forward_args args{&q, &x, a.gamma ? &gamma : nullptr, a.beta ? &beta : nullptr, &y, &mean, &rstd};
    Header& h = out.header();
    const ChildEnd end = run_in_child(
        [&] {
          if (const gnv_kernel* k = load_in_child(path_, h)) {
            h.status = k->forward(&args, h.msg, sizeof h.msg - 1);
            h.returned = 1;
          }
        },
        o_);
    finish("forward", end, h, out, {"y", "mean", "rstd"});
    out.copy_back();
  }

  void backward(const BackwardArgs& a) const override {
    if (!caps_.backward) throw std::logic_error(fmt::format("{} has no backward pass", name_));
    const Problem& p = a.p;
    Outputs out({&a.dx, a.dgamma, a.dbeta});
    const gnv_problem q = abi_problem(p);
    const DType acc = acc_dtype(p.dtype);
    const gnv_buffer dy = x_buffer(p, p.dtype, const_cast<void*>(a.dy.raw()));
    const gnv_buffer x = x_buffer(p, p.dtype, const_cast<void*>(a.x.raw()));
    const gnv_buffer mean = dense_buffer(acc, p.stats_shape(), const_cast<void*>(a.mean.raw()));
    const gnv_buffer rstd = dense_buffer(acc, p.stats_shape(), const_cast<void*>(a.rstd.raw()));
    gnv_buffer gamma{}, dgamma{}, dbeta{};
    if (a.gamma) gamma = dense_buffer(p.dtype, p.channel_shape(), const_cast<void*>(a.gamma->raw()));
    gnv_buffer dx = x_buffer(p, p.dtype, out.data(0));
    if (a.dgamma) dgamma = dense_buffer(p.dtype, p.channel_shape(), out.data(1));
    if (a.dbeta) dbeta = dense_buffer(p.dtype, p.channel_shape(), out.data(2));
    const gnv_backward_args args{&q,  &dy, &x, &mean, &rstd, a.gamma ? &gamma : nullptr,
                                 &dx, a.dgamma ? &dgamma : nullptr, a.dbeta ? &dbeta : nullptr};
    Header& h = out.header();
    const ChildEnd end = run_in_child(
        [&] {
          if (const gnv_kernel* k = load_in_child(path_, h)) {
            if (!k->backward) {
              std::snprintf(h.msg, sizeof h.msg, "the library no longer has a backward function");
              h.status = GNV_ERR_INTERNAL;
            } else {
              h.status = k->backward(&args, h.msg, sizeof h.msg - 1);
            }
            h.returned = 1;
          }
        },
        o_);
    finish("backward", end, h, out, {"dx", "dgamma", "dbeta"});
    out.copy_back();
  }

 private:
  void finish(const char* pass, const ChildEnd& end, Header& h, const Outputs& out,
              const std::vector<const char*>& names) const {
    h.msg[sizeof h.msg - 1] = '\0';
    // The message is the plugin's text: no terminal escapes or control bytes reach gnv's output.
    for (char& ch : h.msg)
      if (ch != '\0' && (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)) ch = '?';
    if (end.timed_out)
      throw KernelAborted(Verdict::timeout, fmt::format("plugin {} {} did not return within {:g} s (killed)",
                                                        name_, pass, o_.timeout_s));
    if (end.signaled) throw KernelAborted(Verdict::crash, fmt::format("plugin {} {} {}", name_, pass, ended(end)));
    if (const std::string over = out.overrun(names); !over.empty())
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
  }

  std::string path_;
  PluginOptions o_;
  std::string name_;
  Capabilities caps_;
};

}  // namespace

std::unique_ptr<Impl> load_plugin(const std::string& path_in, const PluginOptions& o) {
  if (!(o.timeout_s > 0)) throw ExternalError(fmt::format("plugin timeout {} s: must be positive", o.timeout_s));
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path_in, ec))
    throw ExternalError(fmt::format("{}: no such plugin file", path_in));
  // dlopen searches the library path for a bare name; a path with a slash is taken as is.
  const std::string path = std::filesystem::absolute(path_in).string();
  // Loading runs the library's constructors and the two entry points: in a child, which copies the
  // kernel's description out. gnv's own process never loads the library.
  SharedRegion probe(aligned(sizeof(Header)) + sizeof(KernelInfo));
  Header& h = *new (probe.data()) Header();
  KernelInfo& info = *new (probe.data() + aligned(sizeof(Header))) KernelInfo();
  const ChildEnd end = run_in_child(
      [&] {
        if (const gnv_kernel* k = load_in_child(path, h)) {
          std::snprintf(info.name, sizeof info.name, "%s", k->name);
          std::snprintf(info.device, sizeof info.device, "%s", k->device ? k->device : "");
          std::snprintf(info.summary, sizeof info.summary, "%s", k->summary ? k->summary : "");
          info.dtypes = k->dtypes;
          info.layouts = k->layouts;
          info.flags = k->flags;
          info.has_backward = k->backward != nullptr;
          h.status = 0;
          h.returned = 1;
        }
      },
      o);
  if (end.timed_out || end.signaled || end.exit_status != 0 || !h.returned)
    throw ExternalError(fmt::format("{}: loading the plugin and querying its kernel {}", path,
                                    end.timed_out ? fmt::format("did not finish within {:g} s", o.timeout_s)
                                    : end.signaled ? ended(end)
                                                   : fmt::format("exited with status {}", end.exit_status)));
  h.msg[sizeof h.msg - 1] = '\0';
  if (h.status != 0) throw ExternalError(h.msg);
  info.name[sizeof info.name - 1] = info.device[sizeof info.device - 1] = info.summary[sizeof info.summary - 1] = '\0';
  return std::make_unique<PluginImpl>(path, info, o);
}

}  // namespace gnv
