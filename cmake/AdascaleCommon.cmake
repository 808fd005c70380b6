# shared build settings: ccache (pch-aware), warnings.
find_program(ADASCALE_CCACHE ccache)
if(ADASCALE_CCACHE)
  # precompiled headers need these sloppiness flags or ccache never hits
  set(_launcher ${CMAKE_COMMAND} -E env
      CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      ${ADASCALE_CCACHE})
  set(CMAKE_C_COMPILER_LAUNCHER ${_launcher})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_launcher})
endif()

function(adascale_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
endfunction()
