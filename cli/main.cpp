// gnv: how far is a GroupNorm kernel from the exact answer, on which inputs, and is that
// acceptable? The command line itself is gnv::cli::run_main (app.cpp), shared with the Python
// package.
#include "common.h"
#include "gnv/external.h"

int main(int argc, char** argv) {
  gnv::serve_plugin_call_if_asked(argc, argv);  // this process is a plugin call's child: never returns
  gnv::set_plugin_host("/proc/self/exe");
  return gnv::cli::run_main(argc, argv);
}
