#include "analysis.hpp"

#include <clang-c/CXCompilationDatabase.h>
#include <clang-c/Index.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <nlohmann/json.hpp>

namespace mandala::fingerprint {
namespace fs = std::filesystem;
namespace {

std::string take(CXString s) {
  const char* c = clang_getCString(s);
  std::string out = c ? c : "";
  clang_disposeString(s);
  return out;
}

bool is_function_kind(CXCursorKind k) {
  return k == CXCursor_FunctionDecl || k == CXCursor_CXXMethod || k == CXCursor_Constructor ||
         k == CXCursor_Destructor || k == CXCursor_ConversionFunction || k == CXCursor_FunctionTemplate;
}
bool is_type_kind(CXCursorKind k) {
  return k == CXCursor_StructDecl || k == CXCursor_ClassDecl || k == CXCursor_UnionDecl || k == CXCursor_EnumDecl ||
         k == CXCursor_ClassTemplate || k == CXCursor_TypeAliasDecl || k == CXCursor_TypedefDecl ||
         k == CXCursor_ClassTemplatePartialSpecialization;
}
bool is_scope_kind(CXCursorKind k) {
  return k == CXCursor_TranslationUnit || k == CXCursor_Namespace || k == CXCursor_StructDecl ||
         k == CXCursor_ClassDecl || k == CXCursor_UnionDecl || k == CXCursor_ClassTemplate || k == CXCursor_LinkageSpec;
}

/// A variable with static storage declared at namespace or class scope.
bool is_global_variable(CXCursor c) {
  if (clang_getCursorKind(c) != CXCursor_VarDecl) return false;
  return is_scope_kind(clang_getCursorKind(clang_getCursorSemanticParent(c)));
}

std::string qualified_name(CXCursor c) {
  std::string name = take(clang_getCursorDisplayName(c));
  for (CXCursor p = clang_getCursorSemanticParent(c); !clang_Cursor_isNull(p); p = clang_getCursorSemanticParent(p)) {
    const auto k = clang_getCursorKind(p);
    if (k == CXCursor_TranslationUnit || clang_isInvalid(k)) break;
    if (k == CXCursor_LinkageSpec) continue;
    std::string part = take(clang_getCursorSpelling(p));
    if (part.empty()) part = "(anonymous)";
    name = part + "::" + name;
  }
  return name;
}

std::string hex128(const std::string& data) {
  const XXH128_hash_t h = XXH3_128bits(data.data(), data.size());
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

std::string file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return hex128(bytes.str());
}

/// One translation unit's findings, valid while its flags and every file it read are unchanged.
struct CachedUnit {
  std::string key;                                         ///< the source and the flags
  std::vector<std::pair<std::string, std::string>> files;  ///< every file read, with its hash
  Result result;
  [[nodiscard]] bool valid(const std::string& k) const {
    return k == key &&
           std::all_of(files.begin(), files.end(), [](const auto& f) { return file_hash(f.first) == f.second; });
  }
};

constexpr int cache_format = 1;

std::map<std::string, CachedUnit> load_cache(const fs::path& path) {
  std::map<std::string, CachedUnit> out;
  std::ifstream in(path);
  if (!in) return out;
  try {
    const auto doc = nlohmann::json::parse(in);
    if (doc.at("format").get<int>() != cache_format) return out;
    for (const auto& [source, u] : doc.at("units").items()) {
      CachedUnit unit;
      unit.key = u.at("key").get<std::string>();
      unit.files = u.at("files").get<std::vector<std::pair<std::string, std::string>>>();
      for (const auto& [id, c] : u.at("components").items()) {
        Component comp;
        comp.key = c.at("key").get<std::string>();
        comp.kind = static_cast<Kind>(c.at("kind").get<int>());
        comp.file = c.at("file").get<std::string>();
        comp.code = c.at("code").get<std::string>();
        comp.hash = c.at("hash").get<std::string>();
        comp.refs = c.at("refs").get<std::set<std::string>>();
        unit.result.components.emplace(id, std::move(comp));
      }
      for (const auto& o : u.at("ops"))
        unit.result.ops.push_back({o.at(0).get<std::string>(), o.at(1).get<std::string>(), o.at(2).get<std::string>()});
      unit.result.warnings = u.at("warnings").get<std::vector<std::string>>();
      unit.result.inputs = u.at("inputs").get<std::set<std::string>>();
      out.emplace(source, std::move(unit));
    }
  } catch (const std::exception&) {
    out.clear();  // a damaged cache is only slower
  }
  return out;
}

void save_cache(const fs::path& path, const std::map<std::string, CachedUnit>& units) {
  nlohmann::json doc;
  doc["format"] = cache_format;
  auto& out = doc["units"];
  out = nlohmann::json::object();
  for (const auto& [source, unit] : units) {
    nlohmann::json u;
    u["key"] = unit.key;
    u["files"] = unit.files;
    u["components"] = nlohmann::json::object();
    for (const auto& [id, c] : unit.result.components)
      u["components"][id] = {{"key", c.key},   {"kind", static_cast<int>(c.kind)},
                             {"file", c.file}, {"code", c.code},
                             {"hash", c.hash}, {"refs", c.refs}};
    u["ops"] = nlohmann::json::array();
    for (const auto& o : unit.result.ops) u["ops"].push_back({o.name, o.root, o.where});
    u["warnings"] = unit.result.warnings;
    u["inputs"] = unit.result.inputs;
    out[source] = std::move(u);
  }
  std::ofstream file(path, std::ios::trunc);
  file << doc.dump();
}

class Analyser {
 public:
  explicit Analyser(const Options& options) : m_options(options) {
    m_root = fs::weakly_canonical(options.root).string();
    for (const auto& e : options.excludes) m_excludes.push_back(fs::weakly_canonical(e).string());
    m_index = clang_createIndex(0, 0);
  }
  ~Analyser() { clang_disposeIndex(m_index); }
  Analyser(const Analyser&) = delete;
  Analyser& operator=(const Analyser&) = delete;

  Result run() {
    CXCompilationDatabase_Error err{};
    const std::string dir = m_options.compile_commands.string();
    CXCompilationDatabase db = clang_CompilationDatabase_fromDirectory(dir.c_str(), &err);
    if (err != CXCompilationDatabase_NoError)
      throw std::runtime_error("cannot read " + dir +
                               "/compile_commands.json: configure the project with CMAKE_EXPORT_COMPILE_COMMANDS "
                               "(mandala_track_versions sets it)");
    struct DbGuard {
      CXCompilationDatabase db;
      ~DbGuard() { clang_CompilationDatabase_dispose(db); }
    } guard{db};
    if (!m_options.cache.empty()) m_cache = load_cache(m_options.cache);
    for (const auto& src : m_options.sources) parse(db, fs::weakly_canonical(src));
    if (!m_options.cache.empty()) save_cache(m_options.cache, m_new_cache);
    m_result.reparsed = m_reparsed;
    return std::move(m_result);
  }

 private:
  void parse(CXCompilationDatabase db, const fs::path& source) {
    CXCompileCommands cmds = clang_CompilationDatabase_getCompileCommands(db, source.c_str());
    const unsigned n = clang_CompileCommands_getSize(cmds);
    if (n == 0) {
      clang_CompileCommands_dispose(cmds);
      throw std::runtime_error(source.string() + " is not in compile_commands.json (is it a source of the target?)");
    }
    CXCompileCommand cmd = clang_CompileCommands_getCommand(cmds, 0);
    const std::string workdir = take(clang_CompileCommand_getDirectory(cmd));
    std::vector<std::string> args;
    const unsigned argc = clang_CompileCommand_getNumArgs(cmd);
    std::vector<std::string> raw;
    for (unsigned i = 1; i < argc; ++i) raw.push_back(take(clang_CompileCommand_getArg(cmd, i)));
    clang_CompileCommands_dispose(cmds);
    // Keep what changes the meaning of the code (include paths, macros, language standard);
    // drop the compiler-specific rest (warnings, optimisation, code generation, outputs).
    auto absolute = [&](const std::string& p) {
      fs::path path(p);
      return (path.is_absolute() ? path : fs::path(workdir) / path).string();
    };
    for (std::size_t i = 0; i < raw.size(); ++i) {
      const std::string& a = raw[i];
      static const char* with_value[] = {"-I", "-isystem", "-iquote", "-idirafter", "-include", "-D", "-U"};
      bool kept = false;
      for (const char* flag : with_value) {
        const std::string f(flag);
        if (a == f && i + 1 < raw.size()) {
          args.push_back(a);
          const bool is_path = f != "-D" && f != "-U";
          args.push_back(is_path ? absolute(raw[++i]) : raw[++i]);
          kept = true;
        } else if (a.size() > f.size() && a.rfind(f, 0) == 0 && (f == "-I" || f == "-D" || f == "-U")) {
          args.push_back(f == "-I" ? "-I" + absolute(a.substr(2)) : a);
          kept = true;
        }
        if (kept) break;
      }
      if (!kept && (a.rfind("-std=", 0) == 0 || a == "-pthread")) args.push_back(a);
    }
    args.emplace_back("-xc++");
    args.emplace_back("-Wno-everything");
    std::string key = source.string();
    for (const auto& a : args) key += '\n' + a;
    if (auto cached = m_cache.find(source.string()); cached != m_cache.end() && cached->second.valid(key)) {
      merge(cached->second.result);
      m_new_cache.emplace(source.string(), std::move(cached->second));
      return;
    }
    ++m_reparsed;
    m_unit = {};
    m_unit_files.clear();
    m_macros.clear();
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    CXTranslationUnit tu = nullptr;
    const auto rc = clang_parseTranslationUnit2(m_index, source.c_str(), argv.data(), static_cast<int>(argv.size()),
                                                nullptr, 0, CXTranslationUnit_DetailedPreprocessingRecord, &tu);
    if (rc != CXError_Success || tu == nullptr)
      throw std::runtime_error("libclang could not parse " + source.string() + " (error " + std::to_string(rc) + ")");
    struct TuGuard {
      CXTranslationUnit tu;
      ~TuGuard() { clang_disposeTranslationUnit(tu); }
    } tu_guard{tu};
    std::string errors;
    for (unsigned i = 0, nd = clang_getNumDiagnostics(tu); i < nd; ++i) {
      CXDiagnostic d = clang_getDiagnostic(tu, i);
      if (clang_getDiagnosticSeverity(d) >= CXDiagnostic_Error)
        errors += "  " + take(clang_formatDiagnostic(d, clang_defaultDiagnosticDisplayOptions())) + "\n";
      clang_disposeDiagnostic(d);
    }
    if (!errors.empty())
      throw std::runtime_error("libclang reports errors in " + source.string() +
                               " (the fingerprints would be incomplete):\n" + errors);
    m_tu = tu;
    clang_getInclusions(
        tu,
        [](CXFile file, CXSourceLocation*, unsigned, CXClientData data) {
          auto* self = static_cast<Analyser*>(data);
          const std::string name = take(clang_getFileName(file));
          self->m_unit_files.insert(name);
          if (self->is_project_path(name)) self->m_unit.inputs.insert(fs::weakly_canonical(name).string());
        },
        this);
    clang_visitChildren(
        clang_getTranslationUnitCursor(tu),
        [](CXCursor c, CXCursor, CXClientData data) { return static_cast<Analyser*>(data)->visit(c); }, this);
    m_tu = nullptr;
    CachedUnit unit;
    unit.key = key;
    for (const auto& f : m_unit_files) unit.files.emplace_back(f, file_hash(f));
    unit.result = std::move(m_unit);
    merge(unit.result);
    m_new_cache.emplace(source.string(), std::move(unit));
  }

  /// Adds one translation unit's findings: the first definition of a component wins (headers
  /// are seen from several units), an op declared in a header is counted once.
  void merge(const Result& unit) {
    for (const auto& [id, comp] : unit.components) m_result.components.emplace(id, comp);
    for (const auto& op : unit.ops) {
      if (!m_sites.insert(op.where).second) continue;
      if (op.root.rfind("lambda:", 0) == 0) {
        const int nth = ++m_lambdas[op.name];
        auto it = m_result.components.find(op.root);
        if (nth > 1 && it != m_result.components.end()) it->second.key += " #" + std::to_string(nth);
      }
      m_result.ops.push_back(op);
    }
    for (const auto& w : unit.warnings)
      if (std::find(m_result.warnings.begin(), m_result.warnings.end(), w) == m_result.warnings.end())
        m_result.warnings.push_back(w);
    m_result.inputs.insert(unit.inputs.begin(), unit.inputs.end());
  }

  bool is_project_path(const std::string& name) { return relative_path(name).has_value(); }

  std::optional<std::string> relative_path(const std::string& name) {
    auto it = m_file_cache.find(name);
    if (it == m_file_cache.end()) {
      std::optional<std::string> rel;
      std::error_code ec;
      const std::string canon = fs::weakly_canonical(name, ec).string();
      const bool inside = !ec && canon.rfind(m_root + "/", 0) == 0 &&
                          std::none_of(m_excludes.begin(), m_excludes.end(), [&](const std::string& e) {
                            return canon == e || canon.rfind(e + "/", 0) == 0;
                          });
      if (inside) rel = canon.substr(m_root.size() + 1);
      it = m_file_cache.emplace(name, rel).first;
    }
    return it->second;
  }

  /// Project-relative path of the file a cursor is spelled in; nullopt outside the project.
  std::optional<std::string> project_file(CXCursor c) {
    CXFile file = nullptr;
    clang_getSpellingLocation(clang_getCursorLocation(c), &file, nullptr, nullptr, nullptr);
    if (file == nullptr) return std::nullopt;
    return relative_path(take(clang_getFileName(file)));
  }

  std::string where(CXCursor c) {
    CXFile file = nullptr;
    unsigned line = 0;
    clang_getSpellingLocation(clang_getCursorLocation(c), &file, &line, nullptr, nullptr);
    auto rel = project_file(c);
    return (rel ? *rel : take(clang_getFileName(file))) + ":" + std::to_string(line);
  }

  CXChildVisitResult visit(CXCursor c) {
    const auto kind = clang_getCursorKind(c);
    if (kind == CXCursor_MacroDefinition) {
      if (auto file = project_file(c)) {
        const std::string name = take(clang_getCursorSpelling(c));
        if (!clang_Cursor_isMacroBuiltin(c)) {
          const std::string id = "macro:" + name;
          m_macros.insert(name);
          if (!m_unit.components.contains(id)) add_component(id, "macro " + name, Kind::macro, *file, c, {});
        }
      }
      return CXChildVisit_Continue;
    }
    if (kind == CXCursor_CallExpr) check_op_call(c);
    const bool definition = clang_isCursorDefinition(c) != 0;
    if (definition && (is_function_kind(kind) || is_global_variable(c) || is_type_kind(kind))) {
      if (auto file = project_file(c)) {
        const std::string usr = take(clang_getCursorUSR(c));
        if (!usr.empty() && !m_unit.components.contains(usr)) {
          Kind k = is_function_kind(kind) ? Kind::function : is_type_kind(kind) ? Kind::type : Kind::variable;
          std::string key = qualified_name(c);
          if (k == Kind::type) {
            const char* word = kind == CXCursor_EnumDecl                                        ? "enum "
                               : kind == CXCursor_TypeAliasDecl || kind == CXCursor_TypedefDecl ? "type "
                                                                                                : "class ";
            key = word + key;
          }
          if (clang_getCursorLinkage(c) == CXLinkage_Internal) key += " [" + *file + "]";
          add_component(usr, key, k, *file, c, k == Kind::type ? skipped_bodies(c) : std::vector<CXSourceRange>{});
        }
      }
    }
    return CXChildVisit_Recurse;
  }

  /// Method bodies inside a class: separate components, so not part of the class's own code.
  static std::vector<CXSourceRange> skipped_bodies(CXCursor type) {
    std::vector<CXSourceRange> out;
    clang_visitChildren(
        type,
        [](CXCursor c, CXCursor, CXClientData data) {
          auto* ranges = static_cast<std::vector<CXSourceRange>*>(data);
          if (is_function_kind(clang_getCursorKind(c)) && clang_isCursorDefinition(c)) {
            clang_visitChildren(
                c,
                [](CXCursor b, CXCursor, CXClientData d) {
                  if (clang_getCursorKind(b) == CXCursor_CompoundStmt)
                    static_cast<std::vector<CXSourceRange>*>(d)->push_back(clang_getCursorExtent(b));
                  return CXChildVisit_Continue;
                },
                ranges);
            return CXChildVisit_Continue;
          }
          return CXChildVisit_Recurse;
        },
        &out);
    return out;
  }

  void add_component(const std::string& id, std::string key, Kind kind, const std::string& file, CXCursor c,
                     const std::vector<CXSourceRange>& skip) {
    Component comp;
    comp.key = std::move(key);
    comp.kind = kind;
    comp.file = file;
    normalize(c, skip, comp);
    if (kind != Kind::macro) collect_refs(c, comp.refs);
    m_unit.components.emplace(id, std::move(comp));
  }

  /// Tokens of the cursor's extent: the hash covers the token spellings only; the code keeps the
  /// original line breaks and indentation for listings and diffs.
  void normalize(CXCursor c, const std::vector<CXSourceRange>& skip, Component& comp) {
    CXToken* tokens = nullptr;
    unsigned n = 0;
    clang_tokenize(m_tu, clang_getCursorExtent(c), &tokens, &n);
    std::string hashed, code;
    unsigned last_line = 0, last_end_column = 0;
    bool first = true;
    auto offset_of = [](CXSourceLocation loc) {
      unsigned off = 0;
      clang_getSpellingLocation(loc, nullptr, nullptr, nullptr, &off);
      return off;
    };
    std::vector<std::pair<unsigned, unsigned>> skipped;
    for (const auto& r : skip)
      skipped.emplace_back(offset_of(clang_getRangeStart(r)) + 1, offset_of(clang_getRangeEnd(r)) - 1);
    for (unsigned i = 0; i < n; ++i) {
      const auto tk = clang_getTokenKind(tokens[i]);
      if (tk == CXToken_Comment) continue;
      CXSourceLocation loc = clang_getTokenLocation(m_tu, tokens[i]);
      unsigned line = 0, column = 0, off = 0;
      clang_getSpellingLocation(loc, nullptr, &line, &column, &off);
      if (std::any_of(skipped.begin(), skipped.end(), [&](const auto& r) { return off >= r.first && off < r.second; }))
        continue;
      const std::string s = take(clang_getTokenSpelling(m_tu, tokens[i]));
      if (tk == CXToken_Identifier && m_macros.contains(s)) comp.refs.insert("macro:" + s);
      hashed += s;
      hashed += '\n';
      // Listing: the original line breaks and indentation; runs of blanks inside a line become one.
      if (!first && line != last_line) {
        code += '\n';
        code += std::string(column > 0 ? column - 1 : 0, ' ');
      } else if (!first && column > last_end_column) {
        code += ' ';
      }
      code += s;
      first = false;
      unsigned end_line = 0, end_column = 0;
      clang_getSpellingLocation(clang_getRangeEnd(clang_getTokenExtent(m_tu, tokens[i])), nullptr, &end_line,
                                &end_column, nullptr);
      last_line = end_line;
      last_end_column = end_column;
    }
    clang_disposeTokens(m_tu, tokens, n);
    comp.code = std::move(code);
    comp.hash = hex128(hashed);
  }

  /// Ids of the functions, variables and types the subtree of `c` references.
  void collect_refs(CXCursor c, std::set<std::string>& refs) {
    struct Ctx {
      Analyser* self;
      std::set<std::string>* refs;
    } ctx{this, &refs};
    clang_visitChildren(
        c,
        [](CXCursor cur, CXCursor, CXClientData data) {
          auto* x = static_cast<Ctx*>(data);
          if (clang_getCursorKind(cur) == CXCursor_LambdaExpr) {
            // A lambda's body is part of the enclosing code; its references are too.
          }
          CXCursor ref = clang_getCursorReferenced(cur);
          if (!clang_Cursor_isNull(ref) && !clang_equalCursors(ref, cur)) {
            const auto k = clang_getCursorKind(ref);
            if (is_function_kind(k) || is_type_kind(k) || is_global_variable(ref)) {
              // A template specialization points back to its template.
              CXCursor tmpl = clang_getSpecializedCursorTemplate(ref);
              if (!clang_Cursor_isNull(tmpl)) ref = tmpl;
              std::string usr = take(clang_getCursorUSR(ref));
              if (!usr.empty()) x->refs->insert(std::move(usr));
            }
          }
          return CXChildVisit_Recurse;
        },
        &ctx);
  }

  static bool is_mandala_op(CXCursor callee) {
    const auto k = clang_getCursorKind(callee);
    if (k != CXCursor_FunctionDecl && k != CXCursor_FunctionTemplate) return false;
    if (take(clang_getCursorSpelling(callee)) != "op") return false;
    CXCursor ns = clang_getCursorSemanticParent(callee);
    if (clang_getCursorKind(ns) != CXCursor_Namespace || take(clang_getCursorSpelling(ns)) != "mandala") return false;
    return clang_getCursorKind(clang_getCursorSemanticParent(ns)) == CXCursor_TranslationUnit;
  }

  /// First cursor in the subtree (including `c`) satisfying `pred`.
  template <class Pred>
  static std::optional<CXCursor> find_in(CXCursor c, Pred pred) {
    if (pred(c)) return c;
    struct Ctx {
      Pred* pred;
      std::optional<CXCursor> found;
    } ctx{&pred, std::nullopt};
    clang_visitChildren(
        c,
        [](CXCursor cur, CXCursor, CXClientData data) {
          auto* x = static_cast<Ctx*>(data);
          if ((*x->pred)(cur)) {
            x->found = cur;
            return CXChildVisit_Break;
          }
          return CXChildVisit_Recurse;
        },
        &ctx);
    return ctx.found;
  }

  static std::string unquote(const std::string& literal) {
    // A plain "..." literal (adjacent literals are concatenated by the caller).
    std::string out;
    const auto open = literal.find('"');
    const auto close = literal.rfind('"');
    if (open == std::string::npos || close <= open) return out;
    for (std::size_t i = open + 1; i < close; ++i) {
      if (literal[i] == '\\' && i + 1 < close) {
        const char e = literal[++i];
        out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
      } else {
        out += literal[i];
      }
    }
    return out;
  }

  void check_op_call(CXCursor call) {
    CXCursor callee = clang_getCursorReferenced(call);
    if (clang_Cursor_isNull(callee) || !is_mandala_op(callee)) return;
    if (!project_file(call)) return;
    if (clang_Cursor_getNumArguments(call) < 3) return;
    const std::string at = where(call);
    // The name: a string literal.
    auto lit = find_in(clang_Cursor_getArgument(call, 0),
                       [](CXCursor c) { return clang_getCursorKind(c) == CXCursor_StringLiteral; });
    if (!lit) {
      m_unit.warnings.push_back(at +
                                ": the op's name is not a string literal; its code is not tracked (use a "
                                "literal name, or give the op explicit versions)");
      return;
    }
    OpSite site;
    site.name = unquote(take(clang_getCursorSpelling(*lit)));
    site.where = at;
    // The function: a lambda, a function (template), or a variable initialized with a lambda.
    CXCursor fn_arg = clang_Cursor_getArgument(call, 2);
    auto target = find_in(fn_arg, [](CXCursor c) {
      const auto k = clang_getCursorKind(c);
      return k == CXCursor_LambdaExpr || k == CXCursor_DeclRefExpr;
    });
    if (target && clang_getCursorKind(*target) == CXCursor_DeclRefExpr) {
      CXCursor ref = clang_getCursorReferenced(*target);
      const auto rk = clang_getCursorKind(ref);
      if (is_function_kind(rk) || is_global_variable(ref)) {
        CXCursor tmpl = clang_getSpecializedCursorTemplate(ref);
        if (!clang_Cursor_isNull(tmpl)) ref = tmpl;
        site.root = take(clang_getCursorUSR(ref));
      } else if (rk == CXCursor_VarDecl) {
        // A local variable holding a lambda.
        CXCursor def = clang_getCursorDefinition(ref);
        auto lambda = clang_Cursor_isNull(def)
                          ? std::nullopt
                          : find_in(def, [](CXCursor c) { return clang_getCursorKind(c) == CXCursor_LambdaExpr; });
        if (lambda) target = lambda;
      }
    }
    if (site.root.empty() && target && clang_getCursorKind(*target) == CXCursor_LambdaExpr) {
      // Named after the op, not its position: moving the code around is no change.
      site.root = "lambda:" + at;
      if (!m_unit.components.contains(site.root))
        add_component(site.root, "lambda of op " + site.name, Kind::lambda, project_file(*target).value_or(""), *target,
                      {});
    }
    if (site.root.empty()) {
      m_unit.warnings.push_back(at + ": op '" + site.name +
                                "': cannot tell which function it runs (pass a function, a function template or a "
                                "lambda); its code is not tracked");
      return;
    }
    m_unit.ops.push_back(std::move(site));
  }

  const Options& m_options;
  std::string m_root;
  std::vector<std::string> m_excludes;
  CXIndex m_index;
  CXTranslationUnit m_tu = nullptr;
  Result m_result;  ///< merged over the units
  Result m_unit;    ///< the unit being parsed
  std::set<std::string> m_unit_files;
  std::size_t m_reparsed = 0;
  std::map<std::string, CachedUnit> m_cache, m_new_cache;
  std::unordered_map<std::string, std::optional<std::string>> m_file_cache;
  std::set<std::string> m_macros;
  std::set<std::string> m_sites;
  std::map<std::string, int> m_lambdas;
};

std::string escape(const std::string& s) {
  std::string out;
  for (const char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n\"\n    \"";
    } else if (u < 0x20 || u >= 0x7f || ch == '?') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03o", u);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::function: return "function";
    case Kind::variable: return "variable";
    case Kind::type: return "type";
    case Kind::macro: return "macro";
    case Kind::lambda: return "lambda";
  }
  return "function";
}

std::vector<const Component*> Result::reachable(const OpSite& op) const {
  std::set<std::string> seen{op.root};
  std::deque<std::string> todo{op.root};
  std::vector<const Component*> out;
  while (!todo.empty()) {
    const std::string id = todo.front();
    todo.pop_front();
    auto it = components.find(id);
    if (it == components.end()) continue;  // library code, or declared but defined elsewhere
    out.push_back(&it->second);
    for (const auto& r : it->second.refs)
      if (seen.insert(r).second) todo.push_back(r);
  }
  std::sort(out.begin(), out.end(), [](const Component* a, const Component* b) { return a->key < b->key; });
  return out;
}

Result analyse(const Options& options) {
  Analyser a(options);
  return a.run();
}

namespace {
/// Ops by name; an op declared at several places gets the union of their code.
std::map<std::string, std::vector<const Component*>> fingerprints(const Result& r) {
  std::map<std::string, std::vector<const Component*>> out;
  for (const auto& op : r.ops) {
    auto& list = out[op.name];
    for (const auto* c : r.reachable(op))
      if (std::find(list.begin(), list.end(), c) == list.end()) list.push_back(c);
    std::sort(list.begin(), list.end(), [](const Component* a, const Component* b) { return a->key < b->key; });
  }
  return out;
}
}  // namespace

std::string generate_source(const Result& result) {
  const auto ops = fingerprints(result);
  std::map<const Component*, std::size_t> index;
  std::vector<const Component*> used;
  for (const auto& [name, comps] : ops)
    for (const auto* c : comps)
      if (index.emplace(c, used.size()).second) used.push_back(c);
  std::ostringstream out;
  out << "// Generated by mandala-fingerprint: the code each op of this target can reach. Do not edit.\n"
      << "#include <mandala/versioning.hpp>\n\nnamespace {\n\n"
      << "const mandala::detail::GeneratedComponent mandala_components[] = {\n";
  for (const auto* c : used)
    out << "  {\"" << escape(c->key) << "\", \"" << kind_name(c->kind) << "\", \"" << c->hash << "\", \""
        << escape(c->file) << "\",\n    \"" << escape(c->code) << "\"},\n";
  if (used.empty()) out << "  {\"\", \"\", \"\", \"\", \"\"},\n";
  out << "};\n\n";
  std::size_t k = 0;
  for (const auto& [name, comps] : ops) {
    out << "const unsigned mandala_op_" << k++ << "[] = {";
    for (std::size_t i = 0; i < comps.size(); ++i) out << (i ? ", " : "") << index[comps[i]];
    if (comps.empty()) out << "0";
    out << "};\n";
  }
  out << "\nconst mandala::detail::GeneratedOp mandala_ops[] = {\n";
  k = 0;
  for (const auto& [name, comps] : ops)
    out << "  {\"" << escape(name) << "\", mandala_op_" << k++ << ", " << comps.size() << "},\n";
  if (ops.empty()) out << "  {\"\", nullptr, 0},\n";
  out << "};\n\n"
      << "const bool mandala_registered = mandala::detail::register_fingerprints(\n"
      << "    mandala_components, " << used.size() << ", mandala_ops, " << ops.size() << ");\n\n"
      << "}  // namespace\n";
  return out.str();
}

std::string generate_json(const Result& result) {
  nlohmann::json doc;
  doc["ops"] = nlohmann::json::object();
  for (const auto& [name, comps] : fingerprints(result)) {
    auto& arr = doc["ops"][name];
    arr = nlohmann::json::array();
    for (const auto* c : comps)
      arr.push_back(
          {{"key", c->key}, {"kind", kind_name(c->kind)}, {"hash", c->hash}, {"file", c->file}, {"code", c->code}});
  }
  doc["warnings"] = result.warnings;
  return doc.dump(2);
}

}  // namespace mandala::fingerprint
