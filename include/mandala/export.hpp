#pragma once
// MANDALA_API marks what libmandala exports. The library is compiled with hidden visibility
// (-fvisibility=hidden -fvisibility-inlines-hidden): only declarations marked MANDALA_API are
// part of its dynamic symbol table, so consumers link against the public API and nothing else
// (docs/ARCHITECTURE.md, "The library's boundary").
//
// Mark a class that has members compiled into the library (`class MANDALA_API Storage`), which
// also exports its typeinfo and vtable (so `catch (mandala::Error&)` and typeid comparisons work
// across the boundary), and each free function compiled into the library (including friends).
// Templates and functions defined in the headers need no mark: consumers compile their own.
// The same mark serves building and using the library (ELF visibility), static builds included.

#if defined(__GNUC__) || defined(__clang__)
#define MANDALA_API __attribute__((visibility("default")))
#else
#define MANDALA_API
#endif
