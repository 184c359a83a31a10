#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build script: compiles every fuzz target of fuzz/ with $CXX $CXXFLAGS
# and links $LIB_FUZZING_ENGINE, leaving in $OUT per target the binary, its dictionary and its
# seed corpus (<target>_seed_corpus.zip). No CMake: the same script runs in the base-builder image
# and, for a local check, on a developer machine:
#   CXX=clang++-14 CXXFLAGS="-fsanitize=address,undefined,fuzzer-no-link" \
#   LIB_FUZZING_ENGINE=-fsanitize=fuzzer SRC=$PWD/.. WORK=/tmp/w OUT=/tmp/o .clusterfuzzlite/build.sh
# The sources are those of the CMake targets gnv_core (with reports/ and external/), gnv_impls (CPU implementations; optional
# ones with their own dependencies are not fuzzed here) and gnv_fuzz_decode.
cd "$SRC/gnv"
deps=/opt/gnv-deps/include
inc=(-Iinclude -I. -I"$deps" -I"$deps/eigen3" -I/usr/include/eigen3)
defs=(-DFMT_HEADER_ONLY -std=c++20 -ffp-contract=off -fno-fast-math)
mkdir -p "$WORK/gnv-obj/generated"
# The build facts that CMake configures into gnv_build_info.h (reports/build_info.h.in).
sed -e "s|@GNV_BUILD_COMPILER@|$CXX|" -e "s|@GNV_BUILD_CXX_FLAGS@|$CXXFLAGS|" \
    -e "s|@GNV_BUILD_TYPE@|clusterfuzzlite|" -e "s|@GNV_BUILD_VERSION@|unknown|" \
    -e "s|@GNV_SOURCE_DIR@|$SRC/gnv|" reports/build_info.h.in >"$WORK/gnv-obj/generated/gnv_build_info.h"
inc+=(-I"$WORK/gnv-obj/generated")
objs=()
# impls/simd.cpp needs Highway (a compiled library, not in these images): not fuzzed here.
for f in src/*.cpp oracles/*.cpp reports/*.cpp external/*.cpp $(ls impls/*.cpp | grep -v simd) fuzz/decode.cpp; do
  o="$WORK/gnv-obj/${f//\//_}.o"
  $CXX $CXXFLAGS "${defs[@]}" "${inc[@]}" -c "$f" -o "$o"
  objs+=("$o")
done
for src in fuzz/*.cpp; do
  t=$(basename "$src" .cpp)
  grep -q LLVMFuzzerTestOneInput "$src" || continue  # decode.cpp, replay_main.cpp
  [ "$t" = replay_main ] && continue
  $CXX $CXXFLAGS "${defs[@]}" "${inc[@]}" "$src" "${objs[@]}" $LIB_FUZZING_ENGINE -lmpfr -lgmpxx -lgmp -ldl \
    -o "$OUT/$t"
  [ -f "fuzz/$t.dict" ] && cp "fuzz/$t.dict" "$OUT/$t.dict"
  if [ -d "fuzz/corpus/$t" ]; then
    rm -f "$OUT/${t}_seed_corpus.zip"
    (cd "fuzz/corpus/$t" && zip -q -r "$OUT/${t}_seed_corpus.zip" .)
  fi
done
