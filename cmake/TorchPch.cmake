# one precompiled header for the LibTorch api, reused by every target that includes it;
# parsing torch/torch.h dominates compile time otherwise.
add_library(adascale_torch_pch STATIC ${CMAKE_CURRENT_LIST_DIR}/torch_pch.cpp)
target_link_libraries(adascale_torch_pch PUBLIC ${TORCH_LIBRARIES})
target_precompile_headers(adascale_torch_pch PUBLIC <torch/torch.h> <vector> <string> <memory>)
set_target_properties(adascale_torch_pch PROPERTIES POSITION_INDEPENDENT_CODE OFF)

function(adascale_use_torch target)
  target_link_libraries(${target} PUBLIC ${TORCH_LIBRARIES})
  target_precompile_headers(${target} REUSE_FROM adascale_torch_pch)
endfunction()
