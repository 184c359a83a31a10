#include "process.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sys/wait.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fmt/format.h>
#include <stdexcept>
#include <system_error>

#include "gnv/external.h"

namespace gnv {

std::string signal_description(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  const char* desc = sigdescr_np(sig);
  return fmt::format("SIG{} ({})", abbrev ? abbrev : std::to_string(sig).c_str(), desc ? desc : "unknown signal");
}

namespace external {

SharedRegion::SharedRegion(size_t bytes) : size_(std::max<size_t>(bytes, 1)) {
  fd_ = memfd_create("gnv-plugin-call", MFD_CLOEXEC);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "memfd_create for a plugin call's buffers");
  if (ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
    const int e = errno;
    close(fd_);
    throw std::system_error(e, std::generic_category(), "sizing a plugin call's shared buffers");
  }
  void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    close(fd_);
    throw std::system_error(e, std::generic_category(), "mmap of a plugin call's shared buffers");
  }
  data_ = static_cast<std::byte*>(p);
}

SharedRegion::~SharedRegion() {
  munmap(data_, size_);
  close(fd_);
}

ChildEnd wait_child(pid_t pid, double timeout_s, bool group) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const auto deadline = t0 + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(timeout_s));
  ChildEnd end;
  int status = 0;
  long sleep_ns = 20'000;  // polls back off from 20 us to 10 ms: short calls stay cheap
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "waitpid");
    if (clock::now() >= deadline) {
      if (group) kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      end.timed_out = true;
      break;
    }
    timespec ts{0, sleep_ns};
    nanosleep(&ts, nullptr);
    sleep_ns = std::min(sleep_ns * 2, 10'000'000L);
  }
  end.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  if (!end.timed_out) {
    if (WIFSIGNALED(status)) {
      end.signaled = true;
      end.signal = WTERMSIG(status);
    } else if (WIFEXITED(status)) {
      end.exit_status = WEXITSTATUS(status);
    }
  }
  return end;
}

std::string describe_end(const ChildEnd& e) {
  if (e.timed_out) return fmt::format("did not finish within {:g} s and was killed", e.seconds);
  if (e.signaled) return "crashed: " + signal_description(e.signal);
  if (e.exit_status != 0) return fmt::format("exited with status {}", e.exit_status);
  return {};
}

}  // namespace external
}  // namespace gnv
