# cmake -P script run by the versioning.end_to_end test: installs this build, builds the project
# in ./project against it (mandala_track_versions), runs it, edits its sources, rebuilds and
# reruns, and checks which ops got new versions and recomputed (the original's sequence, spec
# 6.6, and the code-versioning issue's acceptance). One configured build directory serves every
# step.
cmake_minimum_required(VERSION 3.25)

foreach(var MANDALA_BUILD_DIR PROJECT_SOURCE WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "e2e_test.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT BUILD_CONFIG)
  set(BUILD_CONFIG Release)
endif()

set(prefix "${WORK_DIR}/prefix")
set(src "${WORK_DIR}/project")
set(build "${WORK_DIR}/build")
set(store "${WORK_DIR}/store.db")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
file(COPY "${PROJECT_SOURCE}/" DESTINATION "${src}")

function(run)
  cmake_parse_arguments(RUN "MAY_FAIL" "WHAT;OUTPUT" "" ${ARGN})
  execute_process(COMMAND ${RUN_UNPARSED_ARGUMENTS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0 AND NOT RUN_MAY_FAIL)
    list(JOIN RUN_UNPARSED_ARGUMENTS " " cmd)
    message(FATAL_ERROR "${RUN_WHAT} failed (${rc}):\n  ${cmd}\n${out}")
  endif()
  if(RUN_OUTPUT)
    set(${RUN_OUTPUT} "${out}" PARENT_SCOPE)
  endif()
endfunction()

set(fingerprint_seconds "")
# Builds (the fingerprints are regenerated when a source changes) and runs the pipeline.
function(build_and_run out_var)
  run(WHAT "build" "${CMAKE_COMMAND}" --build "${build}" --config "${BUILD_CONFIG}" OUTPUT log)
  string(REGEX MATCHALL "translation units in [0-9.]+ s" times "${log}")
  set(fingerprint_seconds "${fingerprint_seconds};${times}" PARENT_SCOPE)
  run(WHAT "pipeline" "${build}/pipeline" "${store}" ${ARGN} OUTPUT out MAY_FAIL)
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

# Replaces `from` (which must occur) by `to` in a project file.
function(edit file from to)
  file(READ "${src}/${file}" text)
  string(FIND "${text}" "${from}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "edit: '${from}' is not in ${file}")
  endif()
  string(REPLACE "${from}" "${to}" text "${text}")
  file(WRITE "${src}/${file}" "${text}")
endfunction()

# expect(<step> <output> op executed versions [op executed versions ...])
function(expect step out)
  set(args ${ARGN})
  while(args)
    list(POP_FRONT args op executed versions)
    if(NOT out MATCHES "${op}: executed ${executed}, versions ${versions}\n")
      message(FATAL_ERROR "${step}: expected '${op}: executed ${executed}, versions ${versions}' in:\n${out}")
    endif()
  endwhile()
  message(STATUS "${step}: ok")
endfunction()

function(score_hid out var)
  if(NOT out MATCHES "score\\(1\\) hid ([0-9a-f]+)")
    message(FATAL_ERROR "no score(1) hid in:\n${out}")
  endif()
  set(${var} "${CMAKE_MATCH_1}" PARENT_SCOPE)
endfunction()

# Install this build, configure the project once.
run(WHAT "cmake --install" "${CMAKE_COMMAND}" --install "${MANDALA_BUILD_DIR}" --config "${BUILD_CONFIG}"
    --prefix "${prefix}")
run(WHAT "configure the project" "${CMAKE_COMMAND}" -S "${src}" -B "${build}" -G "${GENERATOR}"
    "-DCMAKE_BUILD_TYPE=${BUILD_CONFIG}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
    "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
set(generated "${build}/mandala_versions/pipeline_fingerprints.cpp")

# 1. First run: everything computes.
build_and_run(out)
expect("first run" "${out}" score 3 1 scale 3 1 twin_a 3 1 twin_b 3 1)
score_hid("${out}" hid_original)
if(out MATCHES "versioned only by")
  message(FATAL_ERROR "the tracked program warned about missing fingerprints:\n${out}")
endif()

# 2. An op's own body changes: a new version of that op only, and recomputation.
edit(src/ops.cpp "return middle(x) * 2;" "return middle(x) * 5;")
build_and_run(out)
expect("op body changed" "${out}" score 3 2 scale 0 1 twin_a 0 1 twin_b 0 1)
score_hid("${out}" hid_changed)
if(hid_changed STREQUAL hid_original)
  message(FATAL_ERROR "the changed op kept its call ids")
endif()

# 3. The code is restored: the old calls are reused, no recomputation, the same ids.
edit(src/ops.cpp "return middle(x) * 5;" "return middle(x) * 2;")
build_and_run(out)
expect("code restored" "${out}" score 0 2 scale 0 1 twin_a 0 1 twin_b 0 1)
score_hid("${out}" hid_restored)
if(NOT hid_restored STREQUAL hid_original)
  message(FATAL_ERROR "restored code: score(1) is ${hid_restored}, was ${hid_original}")
endif()

# 4. Comments and formatting only: no new version at all (every component hash is unchanged).
function(component_hashes var)
  file(READ "${generated}.json" json)
  string(REGEX MATCHALL "\"hash\": \"[0-9a-f]+\"" hashes "${json}")
  set(${var} "${hashes}" PARENT_SCOPE)
endfunction()
component_hashes(hashes_before)
edit(src/deep.cpp "int deep_helper(int x) { return x * x; }"
     "// squares its argument\nint deep_helper(int x)\n{\n    return x*x;   /* no change */\n}")
edit(src/ops.cpp "  ++runs[\"score\"];\n  return middle(x) * 2;"
     "  ++runs[\"score\"];  // count\n\n  return middle( x ) * 2;")
build_and_run(out)
expect("comments and formatting" "${out}" score 0 2 scale 0 1 twin_a 0 1 twin_b 0 1)
component_hashes(hashes_after)
if(NOT hashes_before STREQUAL hashes_after OR hashes_before STREQUAL "")
  message(FATAL_ERROR "a comment/whitespace edit changed the fingerprints:\n${hashes_before}\n${hashes_after}")
endif()

# 5. A helper two calls deep, in another file: a new version of exactly the op that reaches it.
edit(src/deep.cpp "return x*x;" "return x*x*x;")
build_and_run(out)
expect("deep helper changed" "${out}" score 3 3 scale 0 1 twin_a 0 1 twin_b 0 1)

# 6. A global constant read by an op.
edit(src/constants.hpp "kFactor = 3;" "kFactor = 4;")
build_and_run(out)
expect("constant changed" "${out}" score 0 3 scale 3 2 twin_a 0 1 twin_b 0 1)

# 7. Two ops share a helper: changing it invalidates both; one op's own body only that op.
edit(src/helpers.cpp "return x + 100;" "return x + 200;")
build_and_run(out)
expect("shared helper changed" "${out}" score 0 3 scale 0 2 twin_a 3 2 twin_b 3 2)
edit(src/ops.cpp "return shared_step(x) + 1;" "return shared_step(x) + 10;")
build_and_run(out)
expect("one twin changed" "${out}" score 0 3 scale 0 2 twin_a 3 3 twin_b 0 2)

# 8. A change marked compatible afterwards reuses the old results.
score_hid("${out}" hid_before_compatible)
edit(src/helpers.cpp "return deep_helper(x) + 1;" "return 1 + deep_helper(x);")
build_and_run(out)
expect("compatible change, first run" "${out}" score 3 4)
run(WHAT "mark-compatible" "${build}/pipeline" "${store}" mark-compatible score OUTPUT marked)
if(NOT marked MATCHES "marked middle\\(int\\)")
  message(FATAL_ERROR "mark-compatible did not mark middle(int):\n${marked}")
endif()
build_and_run(out)
expect("compatible change, marked" "${out}" score 0 4)
score_hid("${out}" hid_compatible)
if(NOT hid_compatible STREQUAL hid_before_compatible)
  message(FATAL_ERROR "after mark-compatible score(1) is ${hid_compatible}, was ${hid_before_compatible}")
endif()

# 9. With OnCodeChange::error the change waits for a decision; marked compatible, nothing
# recomputes.
edit(src/deep.cpp "return x*x*x;" "return x*(x*x);")
build_and_run(out --policy error)
if(NOT out MATCHES "error \\(code_changed\\)" OR NOT out MATCHES "deep_helper\\(int\\)"
   OR NOT out MATCHES "mark-compatible")
  message(FATAL_ERROR "OnCodeChange::error: expected a code_changed error naming deep_helper:\n${out}")
endif()
run(WHAT "mark-compatible" "${build}/pipeline" "${store}" mark-compatible score OUTPUT marked)
build_and_run(out --policy error)
expect("error policy, marked compatible" "${out}" score 0 5 scale 0 2 twin_a 0 3 twin_b 0 2)

# 9b. Edited and rebuilt but not run: the newest recorded version of score is the change of step
# 9, not this edit, so marking by default is refused (it would not mark this edit).
edit(src/deep.cpp "return x*(x*x);" "return (x*x)*x;")
run(WHAT "build" "${CMAKE_COMMAND}" --build "${build}" --config "${BUILD_CONFIG}")
run("${build}/pipeline" "${store}" mark-compatible score OUTPUT refused MAY_FAIL)
if(NOT refused MATCHES "error \\(invalid_argument\\): not marking version 5 of op score compatible by default"
   OR NOT refused MATCHES "not recorded in the storage yet")
  message(FATAL_ERROR "mark-compatible before the edited code ran: expected a refusal:\n${refused}")
endif()
message(STATUS "mark-compatible before a run of the edited code: refused")

# 10. The listing shows each version's dependency code; the diff shows the change.
run(WHAT "versions" "${build}/pipeline" "${store}" versions score OUTPUT listing)
# (A listing shows each content as first seen: deep_helper's cube was written after the
# reformatting of step 4.)
foreach(needle "=== version 1:" "int deep_helper(int x)" "return x * x;" "return x*x*x;" "middle(int)")
  string(FIND "${listing}" "${needle}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the versions listing lacks '${needle}':\n${listing}")
  endif()
endforeach()
run(WHAT "diff" "${build}/pipeline" "${store}" diff score 1 3 OUTPUT diff)
if(NOT diff MATCHES "\n-int deep_helper\\(int x\\) { return x \\* x; }" OR NOT diff MATCHES "\n\\+[ ]*return x\\*x\\*x;")
  message(FATAL_ERROR "unexpected diff of versions 1 and 3:\n${diff}")
endif()

message(STATUS "fingerprint times:${fingerprint_seconds}")
file(REMOVE_RECURSE "${WORK_DIR}")
