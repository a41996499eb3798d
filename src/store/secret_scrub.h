#pragma once
// What the store never keeps of a renter's secrets (issue 17 item 5), as pure text rewrites
// shared by PgStore and the tests' FakeStore so that both keep the same invariants:
// - a command's `registry_auth` is never written (it lives in memory for its pull only);
// - an ended rental keeps its environment variables' names, not their values.
// Each returns its input unchanged when there is nothing to remove; the other keys keep their
// order. JSON nested deeper than kMaxScrubDepth is not walked: it is replaced by "{}" (no
// valid command nests that deep, and such text may hide anything).
#include <string>
#include <string_view>

namespace taolie::store {

inline constexpr std::string_view kRegistryAuthKey = "registry_auth";
inline constexpr int kMaxScrubDepth = 128;

// The command payload without its top-level registry_auth; *removed says whether it had one.
// A payload that is not a JSON object is returned as it is.
std::string PayloadWithoutRegistryAuth(const std::string& payload, bool* removed);

// The deploy payload with each value of its "environment" object replaced by "".
std::string PayloadWithoutEnvValues(const std::string& payload);

// The deployment's spec_json with each value of "env" ([[name, value], ...]) replaced by "".
std::string SpecWithoutEnvValues(const std::string& spec_json);

}  // namespace taolie::store
