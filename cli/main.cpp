// gnv: how far is a GroupNorm kernel from the exact answer, on which inputs, and is that
// acceptable? The command line itself is gnv::cli::run_main (app.cpp), shared with the Python
// package.
#include "common.h"

int main(int argc, char** argv) { return gnv::cli::run_main(argc, argv); }
