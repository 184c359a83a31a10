// The gnv command line (run_main): the executable (main.cpp) and the Python package's gnv.cli()
// run it. One subcommand per file; exit codes: 0 pass, 1 fail, 2 bad usage or input.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <fmt/format.h>
#include <string>
#include <vector>

#include "common.h"

namespace gnv::cli {
Command register_replay(CLI::App& app);  // cmd_replay.cpp: fuzzer inputs, fuzz/decode.h
Command register_sweep(CLI::App& app);    // cmd_sweep.cpp, cmd_compare.cpp, cmd_merge.cpp:
Command register_compare(CLI::App& app);  // sweeps, reports, the regression gate (reports/)
Command register_merge(CLI::App& app);
Command register_validate(CLI::App& app);  // cmd_sweep.cpp: third-party kernels (external/)
Command register_minimize(CLI::App& app);  // cmd_minimize.cpp: shrink a failing case
Command register_repro(CLI::App& app);     // cmd_repro.cpp: an upstream-ready reproducer

int run_main(int argc, char** argv) {
  clear_last_error();
  CLI::App app{"gnv: numerical verification of GroupNorm kernels against an exact oracle.\n"
               "Exit codes: 0 all pass, 1 any failure, 2 bad usage or invalid input."};
  app.name("gnv");
  app.set_version_flag("--version", gnv::report::version_string(), "Print the version (and git describe) and exit");
  app.require_subcommand(1, 1);
  app.fallthrough(false);
  const std::vector<Command> commands{register_list(app), register_check(app),
                                      register_oracle(app), register_sweep(app),
                                      register_compare(app), register_merge(app),
                                      register_suite(app), register_replay(app),
                                      register_validate(app), register_minimize(app),
                                      register_repro(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help is a ParseError with exit code 0; CLI11's other codes (106, 109, ...) are all
    // usage errors to us, and scripts should only have to know about 2.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    // CLI11 reports "gnv frobnicate" as a missing subcommand; name the word it did not know.
    std::string msg = e.what();
    const bool known = argc > 1 && std::any_of(commands.begin(), commands.end(), [&](const Command& c) {
      return c.app->check_name(argv[1]);
    });
    if (argc > 1 && argv[1][0] != '-' && !known)
      msg = fmt::format("unknown subcommand '{}' (expected list, check, oracle, sweep, compare, merge, suite, replay or validate)", argv[1]);
    print_error(msg);
    fmt::print(stderr, "Run with --help for more information.\n");
    return kExitUsage;
  }
  // Plugins and runners registered by this run leave the registry with it: a process that runs
  // the CLI twice (the Python package) must be able to load the same plugin again.
  std::vector<std::string> before;
  for (const Impl* impl : Registry::instance().all()) before.emplace_back(impl->name());
  struct Unregister {
    const std::vector<std::string>& before;
    ~Unregister() {
      for (const Impl* impl : Registry::instance().all())
        if (std::find(before.begin(), before.end(), impl->name()) == before.end())
          Registry::instance().remove(std::string(impl->name()));
    }
  } unregister{before};
  for (const Command& c : commands)
    if (c.app->parsed()) return run_guarded(c.run);
  print_error("no subcommand given");
  return kExitUsage;
}

}  // namespace gnv::cli
