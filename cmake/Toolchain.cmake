# Build-speed settings measured on 2 cores (see shared stack notes): ccache, a fast linker, and one
# precompiled LibTorch header shared by every target that includes torch.
find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM)
  set(CMAKE_C_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
endif()

find_program(LLD_PROGRAM ld.lld)
find_program(GOLD_PROGRAM ld.gold)
if(LLD_PROGRAM AND CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  add_link_options(-fuse-ld=lld)
elseif(GOLD_PROGRAM)
  add_link_options(-fuse-ld=gold)
endif()

add_compile_options(-Wall -Wextra -Wno-unused-parameter)
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  # LibTorch headers trip these on clang; they are not ours.
  add_compile_options(-Wno-unused-private-field -Wno-unknown-warning-option -Wno-deprecated-declarations)
endif()
