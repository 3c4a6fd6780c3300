# Warnings as an INTERFACE target: every project target links it privately.
add_library(mandala_warnings INTERFACE)
target_compile_options(mandala_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough
  $<$<BOOL:${MANDALA_WERROR}>:-Werror>)

# Sanitizers apply to everything the project builds (library, tests, examples).
if(MANDALA_SANITIZE)
  list(JOIN MANDALA_SANITIZE "," _mandala_san)
  add_compile_options(-fsanitize=${_mandala_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_mandala_san})
endif()
