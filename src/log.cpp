#include "log.hpp"

#include <pthread.h>
#include <unistd.h>

#include <csignal>

#include <cerrno>

namespace anubis {

namespace {

void write_all(const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(STDERR_FILENO, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr is gone: nothing sensible left to do with a log line
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

Logger::Logger()
    : writer_([this] {
        // Signals are for the threads that handle them (main.cpp, net.cpp): a signal delivered
        // here would take its default action, and kill the process, at the wrong moment.
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);
        run();
      }) {}

Logger::~Logger() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  writer_.join();
}

void Logger::log(std::string line) {
  {
    std::lock_guard lock(mutex_);
    if (pending_.size() >= kMaxPending) {
      ++dropped_;
      return;
    }
    pending_.push_back(std::move(line));
  }
  wake_.notify_one();
}

void Logger::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !pending_.empty() || dropped_ > 0; });
    std::deque<std::string> batch;
    batch.swap(pending_);
    const std::uint64_t dropped = dropped_;
    dropped_ = 0;
    const bool stop = stopping_;
    lock.unlock();
    std::string text;
    for (auto& line : batch) {
      text += line;
      text += '\n';
    }
    if (dropped > 0)
      text += "log: " + std::to_string(dropped) + " lines dropped (stderr too slow)\n";
    write_all(text);
    lock.lock();
    if (stop && pending_.empty()) return;
  }
}

}  // namespace anubis
