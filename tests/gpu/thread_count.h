#pragma once
// Threads of this process, read from /proc, for tests that show which threads a component
// keeps (issue 18 item 9: GPU call workers exist only while a call is in flight).
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <thread>

namespace taolie::gpu::test_support {

// ThreadSanitizer starts a background thread of its own at the process's first thread
// creation: one thread made and joined before the first count puts it in every count.
inline void StartSanitizerThreads() {
  static const bool started = [] {
    std::thread([] {}).join();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the joined task leaves /proc
    return true;
  }();
  (void)started;
}

inline size_t ThreadCount() {
  StartSanitizerThreads();
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    (void)e;
    ++n;
  }
  return n;
}

// The thread count once it equals `want`, else the count after about 2 s. A thread that was
// just joined can stay listed for a moment while the kernel finishes its exit (the join wakes
// when the thread releases its memory, before the task is removed), so a count right after a
// join may be one too high; a thread that is still alive never goes away.
inline size_t ThreadCountReaching(size_t want) {
  size_t n = ThreadCount();
  for (int i = 0; i < 2000 && n != want; ++i) {  // bounded: at most ~2 s
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    n = ThreadCount();
  }
  return n;
}

}  // namespace taolie::gpu::test_support
