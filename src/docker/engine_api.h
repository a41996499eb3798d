#pragma once
// Pure helpers for the Docker Engine API: image references, the multiplexed exec stream, API
// versions, and the JSON mapping of ContainerSpec / inspect / list / pull progress. No I/O, so
// they are unit-tested without a daemon. JSON travels as std::string to keep nlohmann out of
// this header.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "docker/docker_client.h"
#include "domain/image_reference.h"

namespace taolie::docker {

// A parsed image reference (the grammar is domain/image_reference.h).
using ImageRef = domain::ImageReference;

// Parses and validates `image` with the one image-reference grammar; InvalidArgument
// "invalid image reference \"...\": <reason>" when it does not match.
Result<ImageRef> ParseImageReference(std::string_view image);

// Container ids and names as they may appear in a URL path: [a-zA-Z0-9][a-zA-Z0-9_.-]*,
// at most 255 characters.
bool IsValidContainerRef(std::string_view id_or_name);

// "1.41" -> {1, 41}; nullopt when malformed.
std::optional<std::pair<int, int>> ParseApiVersion(std::string_view version);
// min(server, max_supported) as "major.minor"; error when the server is below min_supported
// or its version is malformed.
Result<std::string> NegotiateApiVersion(std::string_view server, std::string_view min_supported,
                                        std::string_view max_supported);

// Demultiplexes the Engine's attach/exec stream (non-TTY): frames of an 8-byte header
// [stream type, 0, 0, 0, big-endian uint32 size] followed by the payload. Feed data in any
// chunking; stdout and stderr payloads are appended to one output, capped at `max_output`.
class StreamDemuxer {
 public:
  explicit StreamDemuxer(size_t max_output) : max_output_(max_output) {}
  // Returns false when the stream is malformed (unknown stream type).
  bool Feed(std::string_view data);
  const std::string& output() const { return output_; }
  bool truncated() const { return truncated_; }
  // True when the stream ended in the middle of a frame.
  bool incomplete() const { return !header_.empty() || remaining_ > 0; }

 private:
  void Append(std::string_view payload);
  size_t max_output_;
  std::string output_;
  std::string header_;      // partial header bytes
  uint32_t remaining_ = 0;  // payload bytes left in the current frame
  bool truncated_ = false;
};

// Checks what the engine would reject late or what must not reach a URL: name, image,
// restart policy, ports, limits. InvalidArgument naming the field.
Status ValidateSpec(const ContainerSpec& spec);

// The JSON body of POST /containers/create for `spec` (assumes ValidateSpec passed).
std::string BuildCreateBody(const ContainerSpec& spec);

// Maps GET /containers/{id}/json.
Result<ContainerInfo> ParseInspect(std::string_view json);
// Maps GET /containers/json.
Result<std::vector<ContainerInfo>> ParseList(std::string_view json);
// GET /containers/json?size=true: each container's writable layer size (SizeRw, bytes) by id.
Result<std::map<std::string, int64_t>> ParseWritableSizes(std::string_view json);
// Maps GET /images/json.
Result<std::vector<ImageInfo>> ParseImageList(std::string_view json);
// An image id as it may appear in a URL path: [sha256:] followed by 12-64 lowercase hex.
bool IsValidImageId(std::string_view id);
// The `filters` query value for List: {"label":["k=v","k"]}.
std::string BuildLabelFilter(const std::vector<std::pair<std::string, std::string>>& labels);

// Network name (a container ref), bridge name (1-15 of [A-Za-z0-9_.-]), IPv4 subnet, label
// keys. InvalidArgument naming the field.
Status ValidateNetworkSpec(const NetworkSpec& spec);
// The JSON body of POST /networks/create: driver bridge, EnableIPv6 false, CheckDuplicate,
// the subnet in IPAM, enable_icc and bridge name in Options (assumes ValidateNetworkSpec).
std::string BuildNetworkCreateBody(const NetworkSpec& spec);
// Maps GET /networks/{id}.
Result<NetworkInfo> ParseNetworkInspect(std::string_view json);

// One line of the POST /images/create progress stream.
struct PullLine {
  PullProgress progress;
  std::optional<std::string> error;  // set when the line carries error/errorDetail
};
Result<PullLine> ParsePullLine(std::string_view line);

// The engine's error body {"message": "..."}; falls back to the raw text (trimmed, capped).
std::string EngineMessage(std::string_view body);

// Error code for an HTTP status from the engine. `conflict` is the code for 409.
ErrorCode CodeForHttpStatus(long status, ErrorCode conflict);
// Error code for an error line in a pull stream, from its message.
ErrorCode CodeForPullError(std::string_view message);
// Whether a create's error says the storage driver has no StorageOpt (e.g. overlay2 on ext4:
// "--storage-opt is supported only for overlay over xfs with 'pquota' mount option").
bool IsStorageOptUnsupported(std::string_view message);
// Whether a create's error says its image is not there ("No such image: ref"): removed
// between the pull and the create.
bool IsNoSuchImage(std::string_view message);

// The X-Registry-Auth header value for a pull from `registry` (host[:port]): base64url of
// {"username","password","serveraddress"} or {"identitytoken","serveraddress"}. "" when
// `auth` is empty.
std::string RegistryAuthHeader(const RegistryAuth& auth, const std::string& registry);

}  // namespace taolie::docker
