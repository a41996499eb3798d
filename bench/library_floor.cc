// The floor under the agent's memory: an empty program that loads the same shared libraries
// and initialises libcurl (and so OpenSSL) the way the agent does, then sleeps. Built and
// measured by bench/footprint.sh next to the agent.
#include <curl/curl.h>
#include <libpq-fe.h>
#include <unistd.h>

int main() {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)PQlibVersion();
  pause();
}
