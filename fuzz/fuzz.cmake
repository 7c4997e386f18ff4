# The fuzz targets (fuzz/CMakeLists.txt) as a sub-build with clang++, whatever compiler the main
# build uses: built with `all`, run by the ctest test fuzz.targets (label `fuzz`) for
# XLB_FUZZ_SECONDS each; `make fuzz-long FUZZ_SECONDS=N` runs them for N seconds each.
include(ExternalProject)

find_program(XLB_CLANGXX NAMES clang++ clang++-14 REQUIRED)
set(XLB_FUZZ_SECONDS 15 CACHE STRING "seconds each fuzz target runs in the fuzz.targets test")
set(XLB_FUZZ_BUILD "${CMAKE_BINARY_DIR}/fuzz")

set(xlb_fuzz_args -DCMAKE_CXX_COMPILER=${XLB_CLANGXX} -DCMAKE_BUILD_TYPE=)
if(CMAKE_CXX_COMPILER_LAUNCHER)
  list(APPEND xlb_fuzz_args -DCMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER})
endif()
ExternalProject_Add(xlb_fuzz
  SOURCE_DIR "${CMAKE_SOURCE_DIR}/fuzz"
  BINARY_DIR "${XLB_FUZZ_BUILD}"
  CMAKE_ARGS ${xlb_fuzz_args}
  BUILD_ALWAYS ON
  INSTALL_COMMAND "")

add_test(NAME fuzz.targets
  COMMAND "${CMAKE_SOURCE_DIR}/fuzz/run.sh" "${XLB_FUZZ_BUILD}" ${XLB_FUZZ_SECONDS})
set_tests_properties(fuzz.targets PROPERTIES LABELS fuzz TIMEOUT 300)

