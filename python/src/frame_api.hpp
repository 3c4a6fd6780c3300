#pragma once
// The ComputationFrame operations of mandala._core beyond those module.cpp defines with the
// class (frame_api.cpp).

#include <pybind11/pybind11.h>

#include <functional>

#include "mandala/table.hpp"

namespace mandala_python {

/// A table as (column names, {column: list of Python objects}), as module.cpp builds it.
using TableToPython = std::function<pybind11::tuple(const mandala::Table&)>;

/// Adds the methods to mandala._core.ComputationFrame (which must be defined already).
void add_frame_api(pybind11::module_& m, const TableToPython& table_columns);

}  // namespace mandala_python
