# Shared part of the Debian cross toolchain files: compilers named by triple, the sysroot of
# scripts/setup-cross.sh (ADASCALE_SYSROOT, default /opt/adascale-sysroot/<arch>), libraries and
# headers found only inside it, and qemu-user as the emulator CTest runs test binaries with.
if(NOT ADASCALE_SYSROOT)
  if(DEFINED ENV{ADASCALE_SYSROOT})
    set(ADASCALE_SYSROOT $ENV{ADASCALE_SYSROOT})
  else()
    set(ADASCALE_SYSROOT /opt/adascale-sysroot/${ADASCALE_CROSS_ARCH})
  endif()
endif()
if(NOT EXISTS ${ADASCALE_SYSROOT}/usr/include)
  message(FATAL_ERROR "no ${ADASCALE_CROSS_ARCH} sysroot at ${ADASCALE_SYSROOT}: run "
                      "scripts/setup-cross.sh ${ADASCALE_CROSS_ARCH}")
endif()
# try_compile projects re-read this file: pass the sysroot on
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES ADASCALE_SYSROOT)
set(ADASCALE_SYSROOT ${ADASCALE_SYSROOT} CACHE PATH "sysroot of the target architecture")

set(CMAKE_C_COMPILER ${ADASCALE_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${ADASCALE_CROSS_TRIPLE}-g++)
set(CMAKE_SYSROOT ${ADASCALE_SYSROOT})
set(CMAKE_FIND_ROOT_PATH ${ADASCALE_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# qemu's -L makes the sysroot's dynamic loader and libraries the target's /
set(CMAKE_CROSSCOMPILING_EMULATOR ${ADASCALE_QEMU};-L;${ADASCALE_SYSROOT})
