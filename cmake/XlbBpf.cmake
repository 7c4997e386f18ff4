# xlb_bpf_object(NAME SOURCE src.bpf.c)
#
# Compiles one BPF program with clang (-O2 -g -target bpf -Wall -Werror), with a
# depfile so that touching any included header rebuilds the object, then
# generates its libbpf skeleton with `bpftool gen skeleton`. Defines an
# INTERFACE target NAME whose include directory holds NAME.skel.h and whose
# consumers link libbpf.
find_program(XLB_CLANG NAMES clang clang-14 REQUIRED)
find_program(XLB_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
execute_process(COMMAND gcc -dumpmachine OUTPUT_VARIABLE XLB_MULTIARCH
                OUTPUT_STRIP_TRAILING_WHITESPACE)

function(xlb_bpf_object NAME)
  cmake_parse_arguments(ARG "" "SOURCE" "" ${ARGN})
  get_filename_component(src "${ARG_SOURCE}" ABSOLUTE)
  set(outdir "${CMAKE_CURRENT_BINARY_DIR}/${NAME}")
  set(obj "${outdir}/${NAME}.bpf.o")
  set(skel "${outdir}/${NAME}.skel.h")
  file(MAKE_DIRECTORY "${outdir}")
  add_custom_command(
    OUTPUT "${obj}"
    # The objects' BTF names their source files (line info): relative to the checkout, so
    # the binaries, and the image built from them, do not depend on where it is.
    COMMAND "${XLB_CLANG}" -O2 -g -target bpf -Wall -Werror -mcpu=v3
            "-fdebug-prefix-map=${PROJECT_SOURCE_DIR}=."
            -I "${PROJECT_SOURCE_DIR}" -I "${PROJECT_SOURCE_DIR}/bpf"
            -I "/usr/include/${XLB_MULTIARCH}"
            -MD -MF "${obj}.d"
            -c "${src}" -o "${obj}"
    DEPENDS "${src}"
    DEPFILE "${obj}.d"
    COMMENT "BPF ${NAME}"
    VERBATIM)
  add_custom_command(
    OUTPUT "${skel}"
    COMMAND "${XLB_BPFTOOL}" gen skeleton "${obj}" name "${NAME}" > "${skel}"
    DEPENDS "${obj}"
    COMMENT "skeleton ${NAME}"
    VERBATIM)
  add_custom_target(${NAME}_gen ALL DEPENDS "${skel}" "${obj}")
  add_library(${NAME} INTERFACE)
  add_dependencies(${NAME} ${NAME}_gen)
  target_include_directories(${NAME} INTERFACE "${outdir}")
  target_link_libraries(${NAME} INTERFACE PkgConfig::LIBBPF)
  set_property(TARGET ${NAME} PROPERTY XLB_OBJECT "${obj}")
  set(${NAME}_OBJECT "${obj}" PARENT_SCOPE)
endfunction()
