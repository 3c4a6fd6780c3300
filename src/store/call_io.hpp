#pragma once
// The io column of a `calls` row: a call's inputs and outputs in one compact blob, and the keys
// of the `call_refs` index (docs/storage-format.md 3.2).

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mandala/id.hpp"
#include "store/store.hpp"

namespace mandala::store::call_io {

/// The `call_refs` key of a ref: its hid's first 8 bytes, big-endian, as a signed integer.
std::int64_t ref_key(const Id& hid);

/// Encodes `call`'s inputs and outputs into `out` (cleared first); `op_outputs` are the op's
/// declared output names (outputs found there are written as an index).
void encode(const CallRecord& call, std::span<const std::string> op_outputs, std::vector<std::byte>& out);

/// Decodes `io` into `call.inputs` and `call.outputs` (`call.hid` must be set: derived output
/// hids need it). Errc::corrupt_store, naming the io column, when the bytes are malformed.
void decode(std::span<const std::byte> io, std::span<const std::string> op_outputs, CallRecord& call);

}  // namespace mandala::store::call_io
