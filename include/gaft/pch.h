// Precompiled header for gaft_core and the tests: the heavy, stable headers only.
#pragma once
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <string>
#include <vector>
