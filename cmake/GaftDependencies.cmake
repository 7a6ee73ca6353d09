# Dependencies: LibTorch (the PyPI wheel that scripts/setup.sh installs, or any LibTorch 2.x passed
# through CMAKE_PREFIX_PATH / Torch_DIR) and Debian's packages. Decides GAFT_WITH_CUDA.

# The CUDA decision comes first: a CUDA-enabled LibTorch's config looks for the toolkit itself.
set(GAFT_WITH_CUDA OFF)
if(NOT GAFT_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "80-real;90")
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  elseif(GAFT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "GAFT_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER or PATH)")
  endif()
endif()

# LibTorch's CUDA config otherwise guesses the archs (compute_50 and up when no GPU is visible), which
# nvcc 13 rejects. gaft builds sm_80 and sm_90 (+ PTX); scripts/gpu_check.sh passes the GPU's own.
if(NOT DEFINED TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0" CACHE STRING "CUDA archs for LibTorch's CMake config")
endif()
find_package(Torch 2.0 REQUIRED CONFIG)
if(Torch_VERSION VERSION_LESS 2.0)
  message(FATAL_ERROR "gaft needs LibTorch 2.x, found ${Torch_VERSION} at ${Torch_DIR}")
endif()
list(GET TORCH_INCLUDE_DIRS 0 _gaft_torch_inc)
get_filename_component(TORCH_LIB_DIR "${_gaft_torch_inc}/../lib" ABSOLUTE)
set(_gaft_torch_has_cuda OFF)
if(TARGET torch_cuda OR CAFFE2_USE_CUDA)
  set(_gaft_torch_has_cuda ON)
endif()

if(NOT GAFT_CUDA STREQUAL "OFF" AND CMAKE_CUDA_COMPILER AND _gaft_torch_has_cuda)
  set(GAFT_WITH_CUDA ON)
elseif(GAFT_CUDA STREQUAL "ON")
  message(FATAL_ERROR "GAFT_CUDA=ON but LibTorch at ${Torch_DIR} was built without CUDA")
endif()
message(STATUS "gaft: LibTorch ${Torch_VERSION} (${Torch_DIR}), CUDA kernels: ${GAFT_WITH_CUDA}")

find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(CLI11 REQUIRED)
