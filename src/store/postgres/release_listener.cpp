#include "store/postgres/release_listener.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <vector>

#include "store/postgres/pq.hpp"

namespace mandala::store::pg {

namespace {

/// Keys remembered at most; older announcements are forgotten (a waiter that missed one polls).
constexpr std::size_t remembered_keys = std::size_t{1} << 16;

}  // namespace

ReleaseListener::ReleaseListener(std::string conninfo, std::string shown)
    : m_conninfo(std::move(conninfo)), m_shown(std::move(shown)) {}

ReleaseListener::~ReleaseListener() {
  if (m_thread.joinable()) {
    const char byte = 1;
    while (::write(m_stop[1], &byte, 1) < 0 && errno == EINTR) {}
    m_thread.join();
  }
  for (int fd : m_stop)
    if (fd >= 0) ::close(fd);
}

std::uint64_t ReleaseListener::seen() {
  std::unique_lock lock(m_mutex);
  if (!m_started) {
    m_started = true;
    if (::pipe2(m_stop, O_CLOEXEC) != 0) {
      m_first_attempt_done = true;  // no thread: waiters poll
      return m_count;
    }
    m_thread = std::thread([this] { loop(); });
  }
  m_cv.wait(lock, [&] { return m_first_attempt_done; });
  return m_count;
}

bool ReleaseListener::await(const Id& key, std::uint64_t since, std::chrono::microseconds max) {
  std::unique_lock lock(m_mutex);
  return m_cv.wait_for(lock, max, [&] {
    if (m_reconnect > since) return true;
    const auto it = m_released.find(key);
    return it != m_released.end() && it->second > since;
  });
}

void ReleaseListener::connected() {
  std::lock_guard lock(m_mutex);
  m_reconnect = ++m_count;
  m_first_attempt_done = true;
  m_cv.notify_all();
}

void ReleaseListener::record(const std::string& payload) {
  std::lock_guard lock(m_mutex);
  ++m_count;
  std::string_view rest(payload);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    if (const auto key = Id::from_hex(rest.substr(0, comma))) m_released[*key] = m_count;
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  if (m_released.size() > remembered_keys) {
    // Forget the older half of what was announced.
    std::vector<std::uint64_t> ages;
    ages.reserve(m_released.size());
    for (const auto& [k, n] : m_released) ages.push_back(n);
    auto middle = ages.begin() + static_cast<std::ptrdiff_t>(ages.size() / 2);
    std::nth_element(ages.begin(), middle, ages.end());
    std::erase_if(m_released, [&](const auto& entry) { return entry.second < *middle; });
  }
  m_cv.notify_all();
}

void ReleaseListener::loop() {
  std::unique_ptr<pq::Connection> conn;
  int failures = 0;
  for (;;) {
    try {
      if (!conn) {
        conn = std::make_unique<pq::Connection>(m_conninfo, m_shown);
        conn->exec((std::string("LISTEN ") + release_channel).c_str());
        failures = 0;
        connected();
      }
      pollfd fds[2] = {{conn->socket(), POLLIN, 0}, {m_stop[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        throw pq::ConnectionLost("poll failed");
      }
      if (fds[1].revents != 0) return;
      for (const auto& payload : conn->take_notifications()) record(payload);
    } catch (const std::exception&) {
      // Down or refused: wait (50 ms doubling to 1 s, or until stopped) and connect again;
      // waiters poll meanwhile.
      conn.reset();
      {
        std::lock_guard lock(m_mutex);
        m_first_attempt_done = true;
        m_cv.notify_all();
      }
      pollfd stop{m_stop[0], POLLIN, 0};
      const int pause = std::min(1000, 50 << std::min(failures++, 5));
      if (::poll(&stop, 1, pause) > 0) return;
    }
  }
}

}  // namespace mandala::store::pg
