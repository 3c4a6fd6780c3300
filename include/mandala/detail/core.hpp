#pragma once
// The narrow, non-template boundary between the typed op layer (headers) and the engine
// (src/engine). Not part of the stable API.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <typeinfo>
#include <vector>

#include "mandala/export.hpp"
#include "mandala/ref.hpp"
#include "mandala/rounding.hpp"
#include "mandala/versioning.hpp"

namespace mandala {

/// What ops do inside a session: `run` memoizes, `noop` calls the plain function.
enum class Mode { run, noop };

namespace detail {

struct OutputValue;

/// One stored input of a call being recomputed (ReplayFn): the parameter it binds and a lazy
/// ref of its value.
struct ReplayInput {
  const std::string* name = nullptr;
  std::shared_ptr<RefState> ref;
};
/// Runs an op's function again on a stored call's inputs (to recompute a transient output);
/// returns every output, in declared order.
using ReplayFn = std::function<std::vector<OutputValue>(std::span<const ReplayInput> inputs)>;

/// The identity-relevant declaration of an op, shared by every call of it.
struct OpInfo {
  std::string name;
  std::uint32_t version = 0;
  std::vector<std::string> inputs;       ///< every declared parameter, in order
  std::vector<std::string> outputs;      ///< output names, in order
  std::vector<Dependency> dependencies;  ///< OpOptions::depends_on
  /// Whether the op's function is C++ the build may fingerprint (mandala_track_versions); false
  /// for dynamic ops (mandala/dynamic.hpp), which get no warning about a missing fingerprint.
  bool native_code = true;
  bool compute_once = true;  ///< OpOptions::compute_once
  /// Calls may bind arguments named by no declared parameter (a Python *args / **kwargs); the
  /// op's declaration keeps only `inputs` (DynamicOptions::open_inputs).
  bool open_inputs = false;
  /// The op's code components given as data (DynamicOptions::code), used in place of a
  /// registered fingerprint; null when not given. `code_id` is over their names and contents: a
  /// storage resolves the op's version again when it sees another code_id for the op.
  std::shared_ptr<const std::vector<CodeComponent>> code{};
  Id code_id{};
  /// How each parameter's floating-point values are rounded (in `inputs` order); empty when no
  /// parameter rounds (OpOptions::rounding, OpOptions::rounding_of, mandala::rounded).
  std::vector<Rounding> rounding{};
  /// Former names (docs/storage-format.md 2.2): of the op (OpOptions::formerly), of each input
  /// (Param::formerly; parallel to `inputs`, or empty) and output (OpOptions::output_formerly;
  /// parallel to `outputs`, or empty).
  std::vector<std::string> formerly{};
  std::vector<std::vector<std::string>> inputs_formerly{};
  std::vector<std::vector<std::string>> outputs_formerly{};
  /// Which outputs are kept out of the storage (OpOptions::transient, transient_outputs;
  /// parallel to `outputs`, or empty when none is), and how the op recomputes them: set once
  /// by the op's class after construction, before any call.
  std::vector<bool> transient{};
  std::shared_ptr<ReplayFn> replay{};
};

/// Makes `op` the op that recomputes transient outputs of calls of its name and version in
/// this process (the latest one declared; weakly held: a destroyed op recomputes nothing).
MANDALA_API void note_replayable(const std::shared_ptr<const OpInfo>& op);

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
  std::optional<Id> cid;  ///< the content id of `bytes` when already known (else the engine hashes them)
};

/// Runs the op's function on the call's arguments (loading lazy inputs) and encodes outputs.
class MANDALA_API Executor {
 public:
  virtual std::vector<OutputValue> run() = 0;
  /// Set by the engine when the call was found by content and recorded under a new history
  /// (its outputs are new refs whose values were stored before).
  bool reused_by_content = false;
  /// Whether the call could be run again from its stored inputs (no ignored argument, no value
  /// pointer): a call that could not keeps its transient outputs stored.
  bool replayable = true;

 protected:
  ~Executor() = default;
};

// ---- transparent collections (src/engine/collections.cpp) ---------------------------------

/// A value on its way into storage as (part of) a transparent collection: an atom (its
/// encoded bytes), an element given as a ref, or a nested collection of pieces.
struct Piece {
  std::optional<CollectionKind> kind;  ///< set for a collection
  std::vector<std::byte> bytes;        ///< an atom's encoding; a collection's shape after seal_piece
  std::shared_ptr<RefState> ref;       ///< an element given as a ref
  std::vector<std::string> keys;       ///< a dict's keys, one per child
  std::vector<Piece> children;
  Id cid;  ///< set by seal_piece
};

/// The static structure of a type: an atom (no kind), or a collection of `element`s.
struct ShapeSpec {
  std::optional<CollectionKind> kind;
  const ShapeSpec* element = nullptr;
};

/// Input side: records the __make_list__ / __make_dict__ calls that build `piece` (nested
/// collections first, elements given as refs keep their history) and returns its ref.
MANDALA_API std::shared_ptr<RefState> build_collection(StorageCore& core, const std::shared_ptr<StorageCore>& self,
                                                       Piece& piece);
/// Output side, before the call: content ids of the atoms and shapes of the collections.
MANDALA_API void seal_piece(Piece& piece);
/// Output side, after the call: records the __list_getitem__ / __dict_getitem__ calls that give
/// each element of the output collection `out` its history (recursively), and sets its
/// element refs. `computed` is the collection just computed (null when the call was reused);
/// `new_history` says a reused call got new history ids (found by content).
MANDALA_API void destructure(StorageCore& core, const std::shared_ptr<StorageCore>& self,
                             const std::shared_ptr<RefState>& out, const ShapeSpec& spec, Piece* computed,
                             bool new_history);

/// The content id of an encoded value (docs/storage-format.md).
MANDALA_API Id content_id(std::span<const std::byte> encoded);

/// Memoized call: lookup by history, then by content, else `exec.run()` (unless new calls are
/// disallowed). Returns the outputs in declared order. Thread-safe.
MANDALA_API std::vector<std::shared_ptr<RefState>> memoized_call(StorageCore& core,
                                                                 const std::shared_ptr<StorageCore>& self,
                                                                 const OpInfo& op, std::vector<InputSlot>& inputs,
                                                                 Executor& exec);

/// The innermost session of this thread; nullptr when there is none.
struct ContextEntry {
  std::shared_ptr<StorageCore> core;  ///< null for a standalone noop scope
  Mode mode = Mode::run;
};
MANDALA_API const ContextEntry* current_context() noexcept;

/// Whether this thread has an open session on `core` (then explicit calls do not flush).
MANDALA_API bool has_session_on(const StorageCore* core) noexcept;
/// Flushes pending writes of `core` (explicit calls outside a session flush right away).
MANDALA_API void flush_core(StorageCore& core);

}  // namespace detail
}  // namespace mandala
