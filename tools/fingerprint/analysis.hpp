#pragma once
// Static analysis behind code versioning: which code of a project each op can reach.
//
// Every translation unit of a target is parsed with libclang. Definitions in project files
// (functions, methods, function templates, global and static-member variables, classes, enums,
// macros) become *components*, each with its normalized code (the tokens, so comments and
// formatting do not count) and the components it references. An op is found at each call of
// mandala::op("name", params, fn, options): its root is the function, function template, or
// lambda passed as `fn`; its fingerprint is every component reachable from the root.

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace mandala::fingerprint {

enum class Kind { function, variable, type, macro, lambda };
const char* kind_name(Kind kind);

struct Component {
  std::string key;  ///< stable, readable name: "ns::f(int)", "ns::limit", "struct ns::S", ...
  Kind kind = Kind::function;
  std::string file;            ///< project-relative path of the definition
  std::string code;            ///< normalized code: tokens, original line breaks, indentation
  std::string hash;            ///< XXH3-128 of the token sequence, 32 hex digits
  std::set<std::string> refs;  ///< internal ids of referenced components
};

struct OpSite {
  std::string name;
  std::string root;   ///< internal id of the root component
  std::string where;  ///< file:line of the op(...) call
};

struct Options {
  std::filesystem::path compile_commands;       ///< directory holding compile_commands.json
  std::filesystem::path root;                   ///< project files live below it
  std::vector<std::filesystem::path> excludes;  ///< ... but not below these (build dirs)
  std::vector<std::filesystem::path> sources;   ///< translation units to analyse
  /// Where findings per translation unit are kept between runs (none: no cache). A unit whose
  /// flags and files (every file it read, system headers too) are unchanged is not parsed again.
  std::filesystem::path cache;
};

struct Result {
  std::map<std::string, Component> components;  ///< by internal id (USR)
  std::vector<OpSite> ops;
  std::set<std::string> inputs;  ///< every file read (for the build system's depfile)
  std::vector<std::string> warnings;
  std::size_t reparsed = 0;  ///< translation units parsed (the others came from the cache)
  /// Components reachable from an op's root, sorted by key.
  [[nodiscard]] std::vector<const Component*> reachable(const OpSite& op) const;
};

/// Parses every source; throws std::runtime_error naming the file on a parse failure.
Result analyse(const Options& options);

/// The C++ source registering every op's fingerprint (see mandala/versioning.hpp).
std::string generate_source(const Result& result);
/// A JSON document of the same (for tests and inspection).
std::string generate_json(const Result& result);

}  // namespace mandala::fingerprint
