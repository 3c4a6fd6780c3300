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

/// The call's content id as its op, version, inputs (names and cids) and `semantic` version
/// give it (docs/storage-format.md 2).
Id content_id(const CallRecord& call, const Id* semantic);

/// Whether every input of `call` is a raw value (its hid is the atom hid of its cid) and the
/// call's ids are what its op, version, inputs and semantic version give: then the store need not
/// keep its content id (content_id recomputes it), and a lookup by content finds the call under
/// its hid, the hid any call of the same content and raw inputs has.
bool ids_derive_from_raw_inputs(const CallRecord& call);

/// Decodes `io` into `call.inputs` and `call.outputs` (`call.hid` must be set: derived output
/// hids need it). Errc::corrupt_store, naming the io column, when the bytes are malformed.
void decode(std::span<const std::byte> io, std::span<const std::string> op_outputs, CallRecord& call);

}  // namespace mandala::store::call_io
