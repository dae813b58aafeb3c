include_guard(GLOBAL)
include(GoogleTest)

# anubis_add_test(NAME SOURCES src... [LIBS lib...] [LABELS label...])
# One GoogleTest executable; each TEST becomes a ctest case carrying LABELS, so `ctest -L e2e`
# selects a family. Tests that start the server find it through ANUBIS_SERVER.
#
# The properties are applied by a generated script rather than gtest_discover_tests(PROPERTIES):
# CMake 3.25 flattens list values there, so a second label, or every environment variable after
# the first, would be lost without a word.
function(anubis_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main anubis_flags)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 TEST_LIST ${name}_TESTS)

  set(env
    "ANUBIS_SERVER=$<TARGET_FILE:anubis-server>"
    "TSAN_OPTIONS=halt_on_error=1 second_deadlock_stack=1 suppressions=${PROJECT_SOURCE_DIR}/tests/tsan.supp"
    "ASAN_OPTIONS=detect_leaks=1"
    "UBSAN_OPTIONS=print_stacktrace=1 halt_on_error=1")
  set(script "${CMAKE_CURRENT_BINARY_DIR}/${name}_properties.cmake")
  file(GENERATE OUTPUT "${script}" CONTENT "
foreach(test IN LISTS ${name}_TESTS)
  set_tests_properties(\"\${test}\" PROPERTIES
    LABELS [==[${ARG_LABELS}]==]
    TIMEOUT 300
    ENVIRONMENT [==[${env}]==])
endforeach()
")
  # Included by ctest after the discovery script that defines ${name}_TESTS.
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${script}")
endfunction()
