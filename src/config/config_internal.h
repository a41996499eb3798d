#pragma once
// Shared by the loader's translation units, not part of taolie_config's interface:
//   config_loader.cc    the entry points (files, strings, environment, port ranges, host_allow)
//   config_read.cc      YAML document -> Config, section by section (also the key catalogue)
//   config_validate.cc  Validate, one function per config section
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/config_loader.h"

namespace YAML {
class Node;
}  // namespace YAML

namespace taolie::config::internal {

// The key of problems about the whole document.
inline constexpr char kRootKey[] = "(root)";

std::string Lower(std::string s);
// Without leading and trailing spaces and tabs.
std::string Trim(const std::string& s);
// Shortened, quoted rendering of a scalar for messages (never used for secret keys).
std::string Quote(const std::string& s);
// A whole decimal integer, an optional '+' and surrounding blanks allowed; nullopt otherwise.
std::optional<long long> ParseInteger(const std::string& raw);

// Reads a parsed document into `config`: a document that is not a mapping, type errors and
// unknown keys become problems; an undefined or null document leaves the defaults. Never throws.
void ReadDocument(const YAML::Node& root, Config* config, std::vector<ConfigProblem>* problems);

}  // namespace taolie::config::internal
