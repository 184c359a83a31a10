#pragma once
// Kernels gnv did not build, behind the Impl interface so that `gnv validate` runs them through
// the same grid, oracle, verdicts and reports as `gnv sweep`:
//   - a plugin: a shared library speaking the C ABI of gnv/plugin.h; every call into it runs in
//     a child process (the host program, executed afresh) that loads the library itself, so a
//     crash or a hang becomes a verdict (crash, timeout: KernelAborted), never the end of gnv;
//   - an external runner: any program, run once per batch of case directories (README
//     "Validating third-party kernels" has the protocol); its outputs are read back per case.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "gnv/case.h"
#include "gnv/impl.h"
#include "gnv/tensor.h"

namespace gnv {

// A plugin or runner that cannot be used at all (no such file, missing symbol, another ABI
// version, invalid metadata, crash while loading): bad input, exit 2.
class ExternalError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// How plugin calls are isolated. Every call -- the first query of the kernel included -- runs in a
// child that loads the library itself: gnv's own process never loads plugin code.
struct PluginOptions {
  double timeout_s = 60;        // per call
  double memory_bytes = 0;      // RLIMIT_AS of each call's process (0: none)
  std::filesystem::path log;    // the plugin's stdout and stderr, appended (empty: gnv's stderr)
};
// Loads and validates a plugin in a child process. Throws ExternalError with a message naming the
// file and what is wrong (a crash or hang while loading included).
std::unique_ptr<Impl> load_plugin(const std::string& path, const PluginOptions& o);

// The host program of plugin calls: a program whose main() starts with
// serve_plugin_call_if_asked(argc, argv) -- the gnv executable ("/proc/self/exe" in gnv itself; the
// Python package names its installed gnv). Each call forks and executes it afresh, since a
// fork()ed copy of a multi-threaded process may not run arbitrary code. Unset, load_plugin throws.
void set_plugin_host(const std::string& program);
std::string plugin_host();
// When argv is a plugin call (`PROGRAM --gnv-plugin-call FD`), serves it and ends the process;
// otherwise returns at once.
void serve_plugin_call_if_asked(int argc, char** argv);

struct RunnerOptions {
  std::string command;               // run as `sh -c 'COMMAND "$1"' gnv-runner BATCH_DIR`
  std::string name = "runner";       // the impl name in reports
  std::filesystem::path work_dir;    // batch directories go here (created; empty: a temp dir)
  double timeout_s = 1800;           // for one batch
  bool statistics = true;            // the runner writes mean.npy and rstd.npy
  std::string device = "external";
  // The fused forms the runner applies (--runner-fused): only these reach it, in case.json
  // version 2; a runner that predates them never sees such a case (SKIPPED).
  std::vector<Epilogue> epilogues{Epilogue::none};
  bool per_sample = false;
};

// An Impl whose cases run in batches. enqueue() writes a case directory (dy present: the
// backward outputs are asked too); run_queued() runs the command once on all queued cases.
// forward()/backward() of a case never queued run a batch of one.
class BatchImpl : public Impl {
 public:
  virtual void enqueue(const Case& c) const = 0;
  virtual size_t queued() const = 0;
  // Runs the queued batch; returns a one-line summary (cases, seconds, exit status).
  virtual std::string run_queued() const = 0;
};
std::unique_ptr<BatchImpl> make_runner(const RunnerOptions& o);

// ---- the runner-output reader (a fuzz target) -----------------------------------------------

// Something wrong with what a runner wrote for a case: the message names the file.
class RunnerOutputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The output `file` (e.g. ".../c00003/y.npy") from the bytes of the file: an .npy array of dtype
// `want` (bf16 as '<u2' bits) and exactly `shape`. Throws RunnerOutputError, and only it.
Tensor parse_runner_output(std::string_view bytes, const std::string& file, DType want,
                           const std::vector<int64_t>& shape);
// Reads the file; a missing file is a RunnerOutputError saying so.
Tensor read_runner_output(const std::filesystem::path& file, DType want, const std::vector<int64_t>& shape);

// "SIGSEGV (Segmentation fault)".
std::string signal_description(int sig);

}  // namespace gnv
