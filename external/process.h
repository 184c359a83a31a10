#pragma once
// Child processes for isolated calls: shared memory, fork and exec, wait with a time limit.
#include <sys/types.h>

#include <cstddef>
#include <string>

namespace gnv::external {

// A MAP_SHARED mapping of a memfd: a child that inherits fd() (across exec too, once the child
// has cleared its close-on-exec flag) maps the same bytes, and what it writes there the parent sees.
class SharedRegion {
 public:
  explicit SharedRegion(size_t bytes);
  int fd() const { return fd_; }
  ~SharedRegion();
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  std::byte* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  int fd_ = -1;
};

struct ChildEnd {
  bool timed_out = false;
  bool signaled = false;
  int signal = 0;
  int exit_status = 0;
  double seconds = 0;
};

// Waits for pid for at most timeout_s, then kills it (and its process group when group is set)
// with SIGKILL and reaps it.
ChildEnd wait_child(pid_t pid, double timeout_s, bool group);

// "crashed: SIGSEGV (Segmentation fault)", "exited with status 3", "" for a clean exit 0.
std::string describe_end(const ChildEnd& e);

}  // namespace gnv::external
