#pragma once
// Wake-ups for processes waiting on another's claim (docs/guarantees.md, "Each call computed
// once"). A release announces the keys it freed on the database's channel (NOTIFY, delivered at
// commit); a connection of the store's own LISTENs there on a thread, and the threads waiting on
// one of those keys wake at once instead of at their next poll. Polling stays: a claim that
// expires, or whose holder died, is announced by nobody.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "mandala/id.hpp"

namespace mandala::store::pq {
class Connection;
}

namespace mandala::store::pg {

/// The channel releases are announced on (one per database); payloads are comma-separated hex
/// keys, at most `keys_per_notification` each (NOTIFY payloads stop below 8,000 bytes).
inline constexpr const char* release_channel = "mandala_claims";
inline constexpr int keys_per_notification = 200;

class ReleaseListener {
 public:
  /// Listens on the database of `conninfo` once started (seen()); `shown` names it in nothing
  /// but the connection's own messages (a listener that cannot connect is silent: waiters poll).
  ReleaseListener(std::string conninfo, std::string shown);
  ~ReleaseListener();
  ReleaseListener(const ReleaseListener&) = delete;
  ReleaseListener& operator=(const ReleaseListener&) = delete;

  /// The number of announcements seen so far; the first call starts listening and returns once
  /// the first attempt to connect has ended. Take it before trying a claim, pass it to await().
  std::uint64_t seen();
  /// Waits until `key` was announced released after `since`, the listening connection was made
  /// again after `since` (announcements may have been missed meanwhile), or `max` passed; true
  /// when woken by one of the first two.
  bool await(const Id& key, std::uint64_t since, std::chrono::microseconds max);

 private:
  void loop();
  void connected();
  void record(const std::string& payload);

  std::string m_conninfo;
  std::string m_shown;
  int m_stop[2] = {-1, -1};  ///< a pipe: written once to end the thread
  std::thread m_thread;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_started = false;
  bool m_first_attempt_done = false;
  std::uint64_t m_count = 0;                         ///< announcements (and reconnections) seen
  std::uint64_t m_reconnect = 0;                     ///< m_count at the last (re)connection
  std::unordered_map<Id, std::uint64_t> m_released;  ///< key -> m_count when announced
};

}  // namespace mandala::store::pg
