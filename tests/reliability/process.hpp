#pragma once
// Child processes for the reliability tests: spawn a program with arguments, its stdout and
// stderr going to files, and wait for it.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace mandala::reliability {

class Child {
 public:
  /// Starts `program args...` with stdout and stderr appended to the given files.
  Child(const std::string& program, const std::vector<std::string>& args, const std::filesystem::path& out,
        const std::filesystem::path& err) {
    std::vector<std::string> all{program};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    const int rc = posix_spawn(&m_pid, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + program + ": " + std::to_string(rc));
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (m_pid > 0) {
      ::kill(m_pid, SIGKILL);
      wait();
    }
  }

  /// Waits; the exit status, or 128 + the signal that ended it.
  int wait() {
    int status = 0;
    while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {}
    m_pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  /// Whether it has ended (then `status` holds what wait() returns).
  bool poll(int& status) {
    int raw = 0;
    if (::waitpid(m_pid, &raw, WNOHANG) != m_pid) return false;
    m_pid = -1;
    status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    return true;
  }
  void kill(int signal) const { ::kill(m_pid, signal); }

 private:
  pid_t m_pid = -1;
};

}  // namespace mandala::reliability
