#pragma once
// The narrow, non-template boundary between the typed op layer (headers) and the engine
// (src/engine). Not part of the stable API.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <typeinfo>
#include <vector>

#include "mandala/ref.hpp"

namespace mandala {

/// What ops do inside a session: `run` memoizes, `noop` calls the plain function.
enum class Mode { run, noop };

namespace detail {

/// The identity-relevant declaration of an op, shared by every call of it.
struct OpInfo {
  std::string name;
  std::uint32_t version = 0;
  std::vector<std::string> inputs;   ///< every declared parameter, in order
  std::vector<std::string> outputs;  ///< output names, in order
};

/// One storage input of a call. Either `ref` carries ids (a stored ref), or `bytes` holds the
/// encoded value (ids are then derived from it); `ref` may also carry an in-memory value whose
/// bytes the engine encodes when it must store it.
struct InputSlot {
  const std::string* name = nullptr;
  std::shared_ptr<RefState> ref;
  std::vector<std::byte> bytes;
};

/// One computed output.
struct OutputValue {
  std::vector<std::byte> bytes;
  std::shared_ptr<const void> value;
  const std::type_info* type = nullptr;
  EncodeFn encode = nullptr;
};

/// Runs the op's function on the call's arguments (loading lazy inputs) and encodes outputs.
class Executor {
 public:
  virtual std::vector<OutputValue> run() = 0;

 protected:
  ~Executor() = default;
};

/// The content id of an encoded value (docs/storage-format.md).
Id content_id(std::span<const std::byte> encoded);

/// Memoized call: lookup by history, then by content, else `exec.run()` (unless new calls are
/// disallowed). Returns the outputs in declared order. Thread-safe.
std::vector<std::shared_ptr<RefState>> memoized_call(StorageCore& core, const std::shared_ptr<StorageCore>& self,
                                                     const OpInfo& op, std::vector<InputSlot>& inputs, Executor& exec);

/// The innermost session of this thread; nullptr when there is none.
struct ContextEntry {
  std::shared_ptr<StorageCore> core;  ///< null for a standalone noop scope
  Mode mode = Mode::run;
};
const ContextEntry* current_context() noexcept;

/// Whether this thread has an open session on `core` (then explicit calls do not flush).
bool has_session_on(const StorageCore* core) noexcept;
/// Flushes pending writes of `core` (explicit calls outside a session flush right away).
void flush_core(StorageCore& core);

}  // namespace detail
}  // namespace mandala
