#pragma once
// How many threads a multi-threaded CPU implementation (simd) may use. set_cpu_threads(k) with
// k > 0 wins (tests use it to check that results do not depend on the count); otherwise the
// environment variable GNV_THREADS when it is a positive integer; otherwise
// std::thread::hardware_concurrency(). Read on every call, so a change takes effect at once.
#include <atomic>
#include <cstdlib>
#include <thread>

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

}  // namespace gnv
