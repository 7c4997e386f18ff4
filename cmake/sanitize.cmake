# The userspace test suites again, built with ASan + UBSan (every report fatal) in a sub-build of
# this project (BUILD/sanitize, -DXLB_SANITIZE=ON) and run by the ctest test sanitize.suites:
# the suites that need no root (the unit, policy, sync, agent loop, Kubernetes client and
# sources, xlbctl table and manifest tests), since the sanitizers watch this process's memory,
# not the kernel's. The sub-build compiles only what those suites need.
include(ExternalProject)

set(XLB_SANITIZE_BUILD "${CMAKE_BINARY_DIR}/sanitize")
set(xlb_sanitize_args -DXLB_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER} -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER})
if(CMAKE_CXX_COMPILER_LAUNCHER)
  list(APPEND xlb_sanitize_args -DCMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER}
       -DCMAKE_C_COMPILER_LAUNCHER=${CMAKE_C_COMPILER_LAUNCHER})
endif()
include(ProcessorCount)
ProcessorCount(xlb_cpus)
ExternalProject_Add(xlb_sanitize
  SOURCE_DIR "${CMAKE_SOURCE_DIR}"
  BINARY_DIR "${XLB_SANITIZE_BUILD}"
  CMAKE_ARGS ${xlb_sanitize_args}
  BUILD_COMMAND ${CMAKE_COMMAND} --build . --target xlb_sanitize_suites -j ${xlb_cpus}
  BUILD_ALWAYS ON
  INSTALL_COMMAND "")

# The suites xlb_sanitize_suites builds (tests/CMakeLists.txt), without those that need root;
# NOT_BUILT: the placeholders gtest_discover_tests leaves for the suites the sub-build skips.
add_test(NAME sanitize.suites
  COMMAND ${CMAKE_CTEST_COMMAND} --test-dir "${XLB_SANITIZE_BUILD}"
          -R "^(unit|policy|sync|agent|cli|kube[.]client|kube[.]source|deploy)[.]"
          -E "NOT_BUILT|[.]Scale[.]" -LE root --output-on-failure --timeout 300)
set_tests_properties(sanitize.suites PROPERTIES LABELS sanitize TIMEOUT 1200)
