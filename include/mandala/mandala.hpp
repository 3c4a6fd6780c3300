#pragma once
// Umbrella header of libmandala: persistent, reusable, queryable computations.

#include "mandala/codec.hpp"     // IWYU pragma: export
#include "mandala/dynamic.hpp"   // IWYU pragma: export
#include "mandala/error.hpp"     // IWYU pragma: export
#include "mandala/frame.hpp"     // IWYU pragma: export
#include "mandala/id.hpp"        // IWYU pragma: export
#include "mandala/op.hpp"        // IWYU pragma: export
#include "mandala/ref.hpp"       // IWYU pragma: export
#include "mandala/rounding.hpp"  // IWYU pragma: export
#include "mandala/storage.hpp"   // IWYU pragma: export
#include "mandala/table.hpp"     // IWYU pragma: export
#include "mandala/value.hpp"     // IWYU pragma: export
