// The external-runner driver: writes a batch of case directories, runs the runner's command once
// on the batch, and answers each forward/backward call from the files its case directory holds.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "gnv/check.h"
#include "gnv/external.h"
#include "gnv/npy.h"
#include "process.h"

namespace gnv {

namespace fs = std::filesystem;

Tensor parse_runner_output(std::string_view bytes, const std::string& file, DType want,
                           const std::vector<int64_t>& shape) {
  try {
    NpyArray a = parse_npy(bytes, file);
    if (a.fortran_order) {
      // np.save writes a Fortran-contiguous array (a transposed view, say) in Fortran order:
      // take it, reordered to C order, rather than make every runner call ascontiguousarray.
      const int64_t es = static_cast<int64_t>(a.data.size()) / std::max<int64_t>(1, [&] {
        int64_t n = 1;
        for (int64_t e : a.shape) n *= e;
        return n;
      }());
      std::vector<std::byte> c(a.data.size());
      const size_t rank = a.shape.size();
      std::vector<int64_t> idx(rank, 0);
      const int64_t n = es ? static_cast<int64_t>(a.data.size()) / es : 0;
      for (int64_t k = 0; k < n; ++k) {  // k runs in C order over idx
        int64_t f = 0, stride = 1;
        for (size_t d = 0; d < rank; ++d) {
          f += idx[d] * stride;
          stride *= a.shape[d];
        }
        std::memcpy(c.data() + k * es, a.data.data() + f * es, static_cast<size_t>(es));
        for (size_t d = rank; d-- > 0;) {
          if (++idx[d] < a.shape[d]) break;
          idx[d] = 0;
        }
      }
      a.data = std::move(c);
      a.fortran_order = false;
    }
    if (a.shape != shape) {
      auto lit = [](const std::vector<int64_t>& v) {
        std::string s = "(";
        for (size_t i = 0; i < v.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", v[i]);
        return s + (v.size() == 1 ? ",)" : ")");
      };
      throw RunnerOutputError(fmt::format("{}: shape {}, expected {}", file, lit(a.shape), lit(shape)));
    }
    return to_tensor(a, want, file);
  } catch (const RunnerOutputError&) {
    throw;
  } catch (const std::exception& e) {
    // NpyError, and anything else a malformed file provokes, is the runner's fault.
    throw RunnerOutputError(e.what());
  }
}

Tensor read_runner_output(const fs::path& file, DType want, const std::vector<int64_t>& shape) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec)))
    throw RunnerOutputError(fmt::format("{}: missing (the runner did not write it)", file.string()));
  int64_t n = 1;
  for (int64_t e : shape) n *= e;
  // Bounded by what the expected shape needs: a runner's y.npy that is /dev/zero, a FIFO or 2 GB
  // is refused at once instead of being read.
  const std::string bytes = read_small_file_or<RunnerOutputError>(file, npy_max_bytes(n, want));
  return parse_runner_output(bytes, file.string(), want, shape);
}

namespace {

uint64_t fnv(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}
uint64_t fnv(uint64_t h, const std::string& s) { return fnv(h, s.data(), s.size()); }
uint64_t fnv(uint64_t h, const Tensor* t) {
  if (!t) return fnv(h, std::string("-"));
  return fnv(h, t->raw(), t->nbytes());
}

std::string problem_key(const Problem& p) {
  return fmt::format("{} {} {} {} {:x} {} {} {} {} {}", p.N, p.C, p.shape_string(), p.G, std::bit_cast<uint64_t>(p.eps),
                     p.affine, name(p.affine_mode), name(p.epilogue), name(p.dtype), name(p.layout));
}

// Cases are found again by their inputs: the forward pass by (problem, x, gamma, beta), the
// backward pass by (problem, x, gamma, beta, dy) (beta matters to it through an epilogue).
uint64_t forward_key(const Problem& p, const Tensor& x, const Tensor* gamma, const Tensor* beta) {
  uint64_t h = fnv(1469598103934665603ull, problem_key(p) + " fwd");
  return fnv(fnv(fnv(h, &x), gamma), beta);
}
uint64_t backward_key(const Problem& p, const Tensor& x, const Tensor* gamma, const Tensor* beta, const Tensor& dy) {
  uint64_t h = fnv(1469598103934665603ull, problem_key(p) + " bwd");
  return fnv(fnv(fnv(fnv(h, &x), gamma), beta), &dy);
}

std::string tail_of_file(const fs::path& f, size_t max_bytes) {
  // Only the tail is read: a runner may have written hundreds of MB to its log.
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(f, ec))) return {};
  const std::uintmax_t size = fs::file_size(f, ec);
  if (ec) return {};
  std::ifstream in(f, std::ios::binary);
  if (!in) return {};
  const bool cut = size > max_bytes;
  if (cut) in.seekg(static_cast<std::streamoff>(size - max_bytes));
  std::string s(cut ? max_bytes : static_cast<size_t>(size), '\0');
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  s.resize(static_cast<size_t>(in.gcount()));
  if (cut) s = "..." + s;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  for (char& c : s)
    if (c == '\n' || c == '\r') c = '|';
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return s;
}

struct Batch {
  fs::path dir;
  external::ChildEnd end;
  bool ran = false;
  std::string log_tail;
};

struct Entry {
  fs::path dir;
  std::shared_ptr<Batch> batch;
};

class RunnerImpl final : public BatchImpl {
 public:
  explicit RunnerImpl(RunnerOptions o) : o_(std::move(o)) {
    if (o_.command.find_first_not_of(" \t") == std::string::npos) throw ExternalError("--runner: empty command");
    if (!(o_.timeout_s > 0)) throw ExternalError(fmt::format("runner timeout {} s: must be positive", o_.timeout_s));
    if (o_.work_dir.empty()) {
      std::string tmpl = (fs::temp_directory_path() / "gnv-runner-XXXXXX").string();
      if (!mkdtemp(tmpl.data())) throw ExternalError(fmt::format("cannot create {}: {}", tmpl, std::strerror(errno)));
      o_.work_dir = tmpl;
    }
    fs::create_directories(o_.work_dir);
    caps_.dtypes.assign(std::begin(kAllDTypes), std::end(kAllDTypes));
    caps_.layouts.assign(std::begin(kAllLayouts), std::end(kAllLayouts));
    caps_.device = o_.device;
    caps_.deterministic = false;
    caps_.statistics = o_.statistics;
    caps_.epilogues = o_.epilogues;
    caps_.per_sample = o_.per_sample;
    caps_.summary = fmt::format("external runner: {}", o_.command);
  }

  std::string_view name() const override { return o_.name; }
  Capabilities capabilities() const override { return caps_; }

  void enqueue(const Case& c) const override {
    std::lock_guard lock(mu_);
    if (!pending_) new_batch_locked();
    add_locked(c);
  }
  size_t queued() const override {
    std::lock_guard lock(mu_);
    return pending_count_;
  }
  std::string run_queued() const override {
    std::shared_ptr<Batch> b;
    size_t n = 0;
    {
      std::lock_guard lock(mu_);
      b = std::move(pending_);
      n = pending_count_;
      pending_count_ = 0;
    }
    if (!b) return "no cases queued";
    run_batch(*b);
    const std::string how = external::describe_end(b->end);
    return fmt::format("runner {}: {} case(s) in {} took {:.1f} s{}{}", o_.name, n, b->dir.string(), b->end.seconds,
                       how.empty() ? "" : ", ", how);
  }

  void forward(const ForwardArgs& a) const override {
    const Entry e = entry_for(forward_key(a.p, a.x, a.gamma, a.beta), [&] {
      Case c;
      c.problem = a.p;
      c.x = a.x;
      if (a.p.affine) c.gamma = *a.gamma, c.beta = *a.beta;
      return c;
    });
    check_batch(e, "forward");
    const Problem& p = a.p;
    a.y = read_runner_output(e.dir / "y.npy", p.dtype, p.x_shape());
    if (caps_.statistics) {
      const DType acc = acc_dtype(p.dtype);
      a.mean = read_runner_output(e.dir / "mean.npy", acc, p.stats_shape());
      a.rstd = read_runner_output(e.dir / "rstd.npy", acc, p.stats_shape());
    }
  }

  void backward(const BackwardArgs& a) const override {
    const Entry e = entry_for(backward_key(a.p, a.x, a.gamma, a.beta, a.dy), [&] {
      Case c;
      c.problem = a.p;
      c.x = a.x;
      if (a.p.affine) c.gamma = *a.gamma, c.beta = *a.beta;
      c.dy = a.dy;
      return c;
    });
    check_batch(e, "backward");
    const Problem& p = a.p;
    a.dx = read_runner_output(e.dir / "dx.npy", p.dtype, p.x_shape());
    if (a.dgamma) *a.dgamma = read_runner_output(e.dir / "dgamma.npy", p.dtype, p.param_shape());
    if (a.dbeta) *a.dbeta = read_runner_output(e.dir / "dbeta.npy", p.dtype, p.param_shape());
  }

 private:
  void new_batch_locked() const {
    pending_ = std::make_shared<Batch>();
    pending_->dir = o_.work_dir / fmt::format("batch-{}", ++batches_);
    fs::remove_all(pending_->dir);
    fs::create_directories(pending_->dir);
    pending_count_ = 0;
  }

  Entry add_locked(const Case& c) const {
    Entry e{pending_->dir / fmt::format("c{:05}", pending_count_++), pending_};
    save_case(c, e.dir);
    const Tensor* g = c.problem.affine ? &c.gamma : nullptr;
    const Tensor* b = c.problem.affine ? &c.beta : nullptr;
    entries_[forward_key(c.problem, c.x, g, b)] = e;
    if (c.dy) entries_[backward_key(c.problem, c.x, g, b, *c.dy)] = e;
    return e;
  }

  // The entry of a queued case, or a batch of one run now for a case never queued.
  template <class MakeCase>
  Entry entry_for(uint64_t key, MakeCase make) const {
    std::shared_ptr<Batch> b;
    Entry e;
    {
      std::lock_guard lock(mu_);
      if (auto it = entries_.find(key); it != entries_.end() && it->second.batch->ran) return it->second;
      if (pending_) throw std::logic_error("runner: a case was asked for before its batch ran");
      new_batch_locked();
      e = add_locked(make());
      b = std::move(pending_);
      pending_count_ = 0;
    }
    run_batch(*b);
    return e;
  }

  void run_batch(Batch& b) const {
    const fs::path log = b.dir / "runner.log";
    const std::string script = o_.command + " \"$1\"";
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error(fmt::format("fork failed: {}", std::strerror(errno)));
    if (pid == 0) {
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int nul = open("/dev/null", O_RDONLY);
      if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
      if (nul >= 0) dup2(nul, 0);
      execl("/bin/sh", "sh", "-c", script.c_str(), "gnv-runner", b.dir.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    b.end = external::wait_child(pid, o_.timeout_s, true);
    b.log_tail = tail_of_file(log, 600);
    b.ran = true;
  }

  void check_batch(const Entry& e, const char* pass) const {
    const Batch& b = *e.batch;
    const std::string log = b.log_tail.empty() ? "" : fmt::format("; end of {}: {}", (b.dir / "runner.log").string(), b.log_tail);
    if (b.end.timed_out)
      throw KernelAborted(Verdict::timeout, fmt::format("runner {} did not finish the batch {} within {:g} s (killed){}",
                                                        o_.name, b.dir.string(), o_.timeout_s, log));
    if (b.end.signaled)
      throw KernelAborted(Verdict::crash, fmt::format("runner {} crashed on the batch {}: {}{}", o_.name,
                                                      b.dir.string(), signal_description(b.end.signal), log));
    // sh reports a command killed by signal n as exit status 128 + n.
    if (b.end.exit_status > 128 && b.end.exit_status < 128 + 65)
      throw KernelAborted(Verdict::crash, fmt::format("runner {} crashed on the batch {}: {} (exit status {} from the "
                                                      "shell){}",
                                                      o_.name, b.dir.string(),
                                                      signal_description(b.end.exit_status - 128),
                                                      b.end.exit_status, log));
    if (b.end.exit_status != 0)
      throw std::runtime_error(fmt::format("runner {} exited with status {} on the batch {}{}", o_.name,
                                           b.end.exit_status, b.dir.string(), log));
    // unsupported.txt: the runner declines the case (SKIPPED); error.txt: it failed on it (ERROR).
    for (const char* file : {"unsupported.txt", "error.txt"}) {
      const std::filesystem::path path = e.dir / file;
      std::error_code ec;
      if (!std::filesystem::exists(std::filesystem::symlink_status(path, ec))) continue;
      std::string text;
      try {
        text = read_small_file(path, 1 << 20);
      } catch (const std::invalid_argument& ex) {
        throw std::runtime_error(fmt::format("runner {} left an unreadable {}: {}", o_.name, file, ex.what()));
      }
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
      if (text.size() > 500) text = text.substr(0, 500) + "...";
      for (char& ch : text)  // the runner's text: no terminal escapes or control bytes in gnv's output
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
      if (file == std::string_view("unsupported.txt"))
        throw KernelAborted(Verdict::skipped, fmt::format("runner {} declined {} of {}: {}", o_.name, pass, e.dir.string(), text));
      throw std::runtime_error(fmt::format("runner {} could not run {} of {}: {}", o_.name, pass, e.dir.string(), text));
    }
  }

  RunnerOptions o_;
  Capabilities caps_;
  mutable std::mutex mu_;
  mutable std::shared_ptr<Batch> pending_;
  mutable size_t pending_count_ = 0;
  mutable int batches_ = 0;
  mutable std::map<uint64_t, Entry> entries_;
};

}  // namespace

std::unique_ptr<BatchImpl> make_runner(const RunnerOptions& o) { return std::make_unique<RunnerImpl>(o); }

}  // namespace gnv
