#pragma once
// How many threads a multi-threaded CPU implementation (simd) may use. set_cpu_threads(k) with
// k > 0 wins (tests use it to check that results do not depend on the count); otherwise the
// environment variable GNV_THREADS when it is a positive integer; otherwise
// std::thread::hardware_concurrency(). Read on every call, so a change takes effect at once.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace gnv {

inline std::atomic<int>& cpu_threads_override() {
  static std::atomic<int> v{0};
  return v;
}

// k <= 0 restores the default (GNV_THREADS, then the hardware).
inline void set_cpu_threads(int k) { cpu_threads_override().store(k > 0 ? k : 0); }

inline int cpu_threads() {
  if (const int k = cpu_threads_override().load(); k > 0) return k;
  if (const char* e = std::getenv("GNV_THREADS")) {
    char* end = nullptr;
    const long v = std::strtol(e, &end, 10);
    if (end != e && *end == '\0' && v > 0 && v <= 1024) return static_cast<int>(v);
  }
  const unsigned h = std::thread::hardware_concurrency();
  return h > 0 ? static_cast<int>(h) : 1;
}

// A persistent pool of worker threads, so a parallel call does not pay for creating and joining
// threads (measured: about 0.5 ms per call on the 2-core benchmark machine under load, more than
// a cache-resident GroupNorm takes). run(t, n, f) calls f(i) for every i < n on the calling
// thread and up to t - 1 workers, handing out indices dynamically; which thread runs an index is
// unspecified, so callers must make results independent of it (simd does: items write disjoint
// outputs, combines happen afterwards in a fixed order). A call made while another one is in
// progress (another caller thread, or from inside f) runs serially on its own thread.
class ThreadPool {
 public:
  // Never destroyed: its workers sleep on a condition variable until the process ends. A destructor
  // joining them would hang in any fork()ed child that called exit() (it has the pool's
  // std::thread objects but not its threads); the plugin host's children exec instead.
  static ThreadPool& instance() {
    static ThreadPool* pool = new ThreadPool;
    return *pool;
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void run(int threads, int64_t n, const std::function<void(int64_t)>& f) {
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    if (threads <= 1 || n <= 1 || !busy.owns_lock()) {
      for (int64_t i = 0; i < n; ++i) f(i);
      return;
    }
    const int helpers = static_cast<int>(std::min<int64_t>(threads, n)) - 1;
    {
      std::lock_guard<std::mutex> lk(mu_);
      while (static_cast<int>(workers_.size()) < helpers) {
        const int id = static_cast<int>(workers_.size());
        workers_.emplace_back([this, id] { loop(id); });
      }
      f_ = &f;
      n_ = n;
      next_.store(0, std::memory_order_relaxed);
      want_ = helpers;
      active_ = helpers;
      ++gen_;
    }
    wake_.notify_all();
    work();
    std::unique_lock<std::mutex> lk(mu_);
    done_.wait(lk, [&] { return active_ == 0; });
    f_ = nullptr;
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

 private:
  ThreadPool() = default;
  // The first exception thrown by f (on any thread) stops the hand-out and is rethrown by run()
  // once every thread has left f.
  void work() {
    try {
      for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_;) (*f_)(i);
    } catch (...) {
      next_.store(n_, std::memory_order_relaxed);
      std::lock_guard<std::mutex> lk(mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
  void loop(int id) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      wake_.wait(lk, [&] { return gen_ != seen && id < want_; });
      seen = gen_;
      lk.unlock();
      work();
      lk.lock();
      if (--active_ == 0) done_.notify_one();
    }
  }

  std::mutex run_mu_;  // one run at a time
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t)>* f_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
  uint64_t gen_ = 0;
  int want_ = 0, active_ = 0;
  std::exception_ptr error_;  // guarded by mu_
};

}  // namespace gnv
