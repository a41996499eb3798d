#pragma once
// A small JSON Schema (2020-12) validator for the subset the contract's schemas use
// (schemas/README.md): type, properties, required, additionalProperties, items, enum, const,
// minimum, maximum, minLength, maxLength, pattern (std::regex, ECMAScript, searched), anyOf,
// oneOf, $ref to "#/$defs/<name>", $defs; the annotations $schema, title, description and
// $comment. A schema with any other keyword is refused when it is loaded, so a check the
// validator does not know can never pass silently. Test support only.
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "common/result.h"

namespace taolie::testing {

class JsonSchema {
 public:
  // Checks the schema itself (known keywords, well-formed values, every $ref resolvable,
  // every pattern compilable): InvalidArgument naming the schema location otherwise.
  static Result<JsonSchema> Parse(nlohmann::json schema);
  // Reads and parses a schema file.
  static Result<JsonSchema> Load(const std::string& path);

  // "" when `instance` is valid, else the first problem found as
  // "<JSON pointer of the instance>: <reason>", e.g. "/access_info/ssh/port: expected integer,
  // got string".
  std::string Validate(const nlohmann::json& instance) const;

 private:
  // bugprone-exception-escape is reported for the implicit special members of the json and
  // regex members; none of them throws on construction or destruction.
  struct Shared {  // NOLINT(bugprone-exception-escape)
    nlohmann::json root;
    std::map<std::string, std::regex> patterns;  // compiled once, by source text
  };
  explicit JsonSchema(std::shared_ptr<const Shared> shared) : shared_(std::move(shared)) {}
  std::string Check(const nlohmann::json& schema, const nlohmann::json& instance,
                    const std::string& where, int depth) const;
  std::shared_ptr<const Shared> shared_;
};

// The contract's schema `name` (e.g. "heartbeat.request.json") from the repository's schemas/
// folder (compile definition TAOLIE_SCHEMA_DIR).
Result<JsonSchema> LoadContractSchema(const std::string& name);

// Which contract schema describes an exchange with `endpoint` (a name from
// sim::Simulator::EndpointOf: "register", "heartbeat", "commands", "ack", "metrics", "health",
// "event.<kind>"): its request body (none for "commands"), or its answer with HTTP `status`.
// "" when the contract has none (an unknown endpoint, a status that carries no body).
std::string RequestSchemaFor(const std::string& endpoint);
std::string ResponseSchemaFor(const std::string& endpoint, int status);

}  // namespace taolie::testing
