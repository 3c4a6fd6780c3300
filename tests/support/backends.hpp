#pragma once
// Backend-independent storage tests run against every backend: an in-memory SQLite store, an
// SQLite file and, when the build has MANDALA_POSTGRES_SUITES on, a fresh database on the
// PostgreSQL server of the tests (tests/support/postgres.hpp). `reopen()` closes the storage
// and opens it again on the same file or database (a no-op for memory, which cannot be
// reopened), so persistence is checked wherever it exists.
//
// Without a known PostgreSQL server the Postgres tests are skipped with a message saying how to
// give one, or fail when MANDALA_REQUIRE_POSTGRES=1 (set by ctest for the programs that need
// the fixture `postgres`, so a suite that did not run fails there).

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "mandala/mandala.hpp"
#include "support/postgres.hpp"
#include "support/temp_dir.hpp"

#ifndef MANDALA_TEST_POSTGRES_SUITES
#define MANDALA_TEST_POSTGRES_SUITES 0
#endif

namespace mandala::testing {

enum class Backend { memory, file, postgres };

/// The test name suffix of a backend.
inline std::string backend_label(Backend backend) {
  switch (backend) {
    case Backend::memory: return "Memory";
    case Backend::file: return "File";
    case Backend::postgres: return "Postgres";
  }
  return "Unknown";
}
inline std::string backend_name(const ::testing::TestParamInfo<Backend>& info) { return backend_label(info.param); }
/// GetParam() in gtest's (and ctest's) test listings: the name, not the enum's bytes.
inline void PrintTo(Backend backend, std::ostream* os) { *os << backend_label(backend); }

/// The backends the parameterized suites run against in this build.
inline std::vector<Backend> tested_backends() {
  std::vector<Backend> backends{Backend::memory, Backend::file};
  if (MANDALA_TEST_POSTGRES_SUITES) backends.push_back(Backend::postgres);
  return backends;
}

class BackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  /// Derived fixtures that do more after calling this return when IsSkipped() or
  /// HasFatalFailure() (no server for a Postgres test).
  void SetUp() override {
    if (GetParam() == Backend::postgres) {
      const auto server = postgres_server_url();
      if (!server) {
        if (postgres_required()) FAIL() << "MANDALA_REQUIRE_POSTGRES=1 but " << postgres_server_hint();
        GTEST_SKIP() << postgres_server_hint();
      }
      try {
        m_database.emplace(*server);
      } catch (const std::exception& e) {
        FAIL() << e.what();
      }
    }
    open();
  }

  void open(StorageOptions options = {}) {
    m_options = options;
    m_storage.reset();
    m_storage =
        GetParam() == Backend::memory ? std::make_unique<Storage>() : std::make_unique<Storage>(location(), options);
  }
  /// Closes and reopens a file or database store; keeps an in-memory one.
  void reopen() {
    if (persistent()) open(m_options);
  }
  [[nodiscard]] bool persistent() const { return GetParam() != Backend::memory; }
  /// The store's location as given to Storage (and what Storage::path() returns): the file of
  /// the file backend, the database URL of the PostgreSQL one; empty for memory.
  [[nodiscard]] std::string location() const {
    switch (GetParam()) {
      case Backend::memory: return "";
      case Backend::file: return db_path().string();
      case Backend::postgres: return m_database ? m_database->location() : "";
    }
    return "";
  }
  /// The store file of the file backend (file-specific checks only).
  [[nodiscard]] std::filesystem::path db_path() const { return m_dir / "store.db"; }
  Storage& storage() { return *m_storage; }

  TempDir m_dir;
  std::optional<TempDatabase> m_database;  // the Postgres backend's, for the whole test
  StorageOptions m_options;
  std::unique_ptr<Storage> m_storage;
};

#define MANDALA_INSTANTIATE_BACKENDS(Suite)                                                             \
  INSTANTIATE_TEST_SUITE_P(Backends, Suite, ::testing::ValuesIn(::mandala::testing::tested_backends()), \
                           ::mandala::testing::backend_name)

}  // namespace mandala::testing
