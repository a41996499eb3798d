#include "common/secrets.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace taolie {
namespace {

Status FillRandom(unsigned char* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = getrandom(buf + done, n - done, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return MakeError(ErrorCode::kInternal,
                       std::string("getrandom failed: ") + std::strerror(errno));
    }
    done += static_cast<size_t>(r);
  }
  return OkStatus();
}

Result<std::string> RandomFrom(std::string_view alphabet, size_t length) {
  std::string out;
  out.reserve(length);
  // Largest multiple of alphabet size below 256, for unbiased sampling.
  const unsigned limit = 256 - (256 % alphabet.size());
  std::vector<unsigned char> buf(length * 2 + 16);
  while (out.size() < length) {
    TAOLIE_RETURN_IF_ERROR(FillRandom(buf.data(), buf.size()));
    for (unsigned char c : buf) {
      if (c >= limit) continue;
      out.push_back(alphabet[c % alphabet.size()]);
      if (out.size() == length) break;
    }
  }
  return out;
}

}  // namespace

Result<std::string> RandomAlnum(size_t length) {
  return RandomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", length);
}

Result<std::string> RandomHex(size_t length) { return RandomFrom("0123456789abcdef", length); }

Result<std::string> NewAgentId() {
  auto hex = RandomHex(12);
  if (!hex.ok()) return hex.error();
  return "agent-" + *hex;
}

bool IsValidAgentId(const std::string& id) {
  if (id.size() != 18 || id.rfind("agent-", 0) != 0) return false;
  for (size_t i = 6; i < id.size(); ++i) {
    char c = id[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace taolie
