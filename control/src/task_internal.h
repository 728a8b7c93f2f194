// Private to npe_control: the grid cells layouts are drawn from (task.cpp).
#pragma once

#include <utility>
#include <vector>

#include "npe/control/task.h"

namespace npe::control {

// The usable cells' origins (px) and their side (*side, px).
std::vector<std::pair<double, double>> task_layout_cells(const TaskSpec& task, double* side);

}  // namespace npe::control
