# guide_excerpts.cmake: checks that the guide still quotes the examples
# as they are. A code block of GUIDE that comes right after a line
# "<!-- FILE -->" quotes the file FILE of DIR: each of its parts (the
# block cut at its blank lines) must appear there verbatim.
#
#   <!-- kv_app.c -->
#   ```c
#   static int kv_sup_start(otpc_pid_t *sup, otpc_buf_t **reason) {
#   ```
#
#   cmake -DGUIDE=docs/guide.md -DDIR=examples -P guide_excerpts.cmake
#
# Run by ctest as example_kv_app_guide.
cmake_minimum_required(VERSION 3.20)
file(READ ${GUIDE} rest)
set(mark "<!-- ([A-Za-z0-9_.-]+) -->\n```[a-z]*\n")
set(count 0)
set(stale 0)
while(TRUE)
  string(REGEX MATCH "${mark}" open "${rest}")
  if(open STREQUAL "")
    break()
  endif()
  set(name ${CMAKE_MATCH_1})
  string(FIND "${rest}" "${open}" at)
  string(LENGTH "${open}" len)
  math(EXPR at "${at} + ${len}")
  string(SUBSTRING "${rest}" ${at} -1 rest)
  string(FIND "${rest}" "\n```\n" end)
  if(end EQUAL -1)
    message(FATAL_ERROR "${GUIDE}: a block quoting ${name} is not closed")
  endif()
  string(SUBSTRING "${rest}" 0 ${end} block)
  math(EXPR count "${count} + 1")
  if(NOT EXISTS ${DIR}/${name})
    message(FATAL_ERROR "${GUIDE}: block ${count} quotes ${name}, "
                        "which ${DIR} does not have")
  endif()
  file(READ ${DIR}/${name} source)
  string(APPEND block "\n\n")
  while(NOT block STREQUAL "")
    string(FIND "${block}" "\n\n" cut)
    string(SUBSTRING "${block}" 0 ${cut} part)
    math(EXPR cut "${cut} + 2")
    string(SUBSTRING "${block}" ${cut} -1 block)
    string(FIND "${source}" "${part}" found)
    if(found EQUAL -1)
      math(EXPR stale "${stale} + 1")
      message("${GUIDE}: block ${count} quotes what ${name} does not "
              "have:\n${part}\n")
    endif()
  endwhile()
endwhile()
if(count EQUAL 0)
  message(FATAL_ERROR "${GUIDE}: no block quotes a file of ${DIR}")
endif()
if(stale GREATER 0)
  message(FATAL_ERROR "${stale} quoted parts differ from the files in "
                      "${DIR}")
endif()
message("${count} quoted blocks match the files in ${DIR}")
