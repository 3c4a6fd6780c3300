// Per-thread stack of sessions (storage, mode). Ops consult its top; leaving the last session
// of a storage on this thread flushes that storage.

#include <algorithm>
#include <iostream>
#include <vector>

#include "engine/engine.hpp"
#include "mandala/storage.hpp"

namespace mandala {
namespace detail {
namespace {
thread_local std::vector<ContextEntry> t_stack;

void pop_entry(const StorageCore* core, Mode mode) {
  // Sessions are scoped, so the entry is normally on top; search anyway to stay consistent if
  // a session object outlived an inner one.
  for (auto it = t_stack.rbegin(); it != t_stack.rend(); ++it) {
    if (it->core.get() == core && it->mode == mode) {
      t_stack.erase(std::next(it).base());
      return;
    }
  }
}
}  // namespace

const ContextEntry* current_context() noexcept { return t_stack.empty() ? nullptr : &t_stack.back(); }

bool has_session_on(const StorageCore* core) noexcept {
  return std::any_of(t_stack.begin(), t_stack.end(), [&](const ContextEntry& e) { return e.core.get() == core; });
}

Mode mode_on(const StorageCore* core) noexcept {
  for (auto it = t_stack.rbegin(); it != t_stack.rend(); ++it)
    if (it->core.get() == core) return it->mode;
  return Mode::run;
}
}  // namespace detail

Session::Session(Storage& storage, Mode mode) : m_core(storage.core()), m_mode(mode) {
  detail::t_stack.push_back({m_core, mode});
}

Session::~Session() {
  try {
    close();
  } catch (const std::exception& e) {
    std::cerr << "mandala: leaving a session: " << e.what() << '\n';
  }
}

void Session::close() {
  if (!m_open) return;
  m_open = false;
  detail::pop_entry(m_core.get(), m_mode);
  if (!detail::has_session_on(m_core.get())) m_core->flush();
}

NoopScope::NoopScope() {
  const auto* top = detail::current_context();
  detail::t_stack.push_back({top ? top->core : nullptr, Mode::noop});
}

NoopScope::~NoopScope() {
  for (auto it = detail::t_stack.rbegin(); it != detail::t_stack.rend(); ++it) {
    if (it->mode == Mode::noop) {
      detail::t_stack.erase(std::next(it).base());
      return;
    }
  }
}

}  // namespace mandala
