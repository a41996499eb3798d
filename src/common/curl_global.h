#pragma once
// libcurl's process-wide init, done once for every curl user (the platform client and the
// Docker adapter). The header needs no libcurl; the target taolie_curl_global links it.

namespace taolie {

// curl_global_init(CURL_GLOBAL_DEFAULT) the first time; later calls do nothing. Thread-safe.
void EnsureCurlGlobalInit();

}  // namespace taolie
