#include "state.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "reply.hpp"

namespace anubis {

namespace {

std::string temporary_path(const std::string& path) {
  return path + ".tmp." + std::to_string(::getpid());
}

}  // namespace

std::string check_state_file_path(const std::string& path) {
  struct stat st {};
  if (path.empty()) return "needs a file name";
  if (path.back() == '/' || (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))) {
    return "'" + path + "' is a directory, not a file";
  }
  // The file is replaced by a rename, which would put a regular file in the place of a device
  // (/dev/null), a FIFO or a symbolic link (leaving its target as it was): only a regular file,
  // or nothing, may stand there.
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return "'" + path + "' exists and is not a regular file";
  }
  const std::string tmp = temporary_path(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return "cannot create " + tmp + ": " + std::strerror(errno);
  ::close(fd);
  ::unlink(tmp.c_str());
  return {};
}

std::string write_state_file(const BalanceSnapshot& balances, const std::string& path) {
  std::string text = "{\"balances\":{";
  bool first = true;
  for (const auto& [user, b] : balances) {
    if (!first) text += ',';
    first = false;
    append_json_string(text, user);
    text += ":{\"balance\":" + std::to_string(b.balance) +
            ",\"events\":" + std::to_string(b.events) + '}';
  }
  text += "}}\n";

  const std::string tmp = temporary_path(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return "cannot create " + tmp + ": " + std::strerror(errno);
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return "cannot write " + tmp + ": " + why;
    }
    done += static_cast<std::size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  if (::close(fd) != 0 || !synced) {
    const std::string why = std::strerror(synced ? errno : sync_errno);
    ::unlink(tmp.c_str());
    return "cannot flush " + tmp + ": " + why;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return "cannot rename " + tmp + " to " + path + ": " + why;
  }
  return {};
}

}  // namespace anubis
