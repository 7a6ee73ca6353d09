# ccache for C++ and CUDA. base_dir makes cache keys independent of the clone's path (CI builds a fresh
# clone elsewhere); the sloppiness settings let precompiled headers hit the cache.
find_program(GAFT_CCACHE ccache)
if(GAFT_CCACHE)
  set(_gaft_ccache ${CMAKE_COMMAND} -E env
    CCACHE_BASEDIR=${CMAKE_SOURCE_DIR}
    CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
    CCACHE_NOHASHDIR=1
    ${GAFT_CCACHE})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_gaft_ccache})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${_gaft_ccache})
  message(STATUS "gaft: ccache ${GAFT_CCACHE}")
else()
  message(STATUS "gaft: ccache not found, building without it")
endif()
