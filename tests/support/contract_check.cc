#include "support/contract_check.h"

#include <map>
#include <nlohmann/json.hpp>

#include "platform/delivery.h"
#include "support/json_schema.h"

namespace taolie::testing {
namespace {

constexpr size_t kShownBodyBytes = 2000;

// Schemas by file name, loaded once per call; a schema that does not load is a problem itself.
class Schemas {
 public:
  const JsonSchema* Get(const std::string& name, std::string* error) {
    auto it = loaded_.find(name);
    if (it == loaded_.end()) {
      auto s = LoadContractSchema(name);
      if (!s.ok()) {
        *error = s.error().ToString();
        return nullptr;
      }
      it = loaded_.emplace(name, std::move(*s)).first;
    }
    return &it->second;
  }

 private:
  std::map<std::string, JsonSchema> loaded_;
};

// "" when `body` validates against schema `name`, else why not.
std::string Check(Schemas& schemas, const std::string& name, const std::string& body) {
  std::string error;
  const JsonSchema* schema = schemas.Get(name, &error);
  if (schema == nullptr) return error;
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return "not JSON";
  const std::string why = schema->Validate(j);
  return why.empty() ? "" : name + ": " + why;
}

}  // namespace

std::vector<std::string> ContractViolations(const std::vector<sim::Simulator::Request>& exchanges,
                                            size_t max_reported) {
  Schemas schemas;
  std::vector<std::string> out;
  size_t found = 0;
  auto report = [&](const sim::Simulator::Request& r, const std::string& what,
                    const std::string& why, const std::string& body) {
    if (++found > max_reported) return;
    out.push_back(r.method + " " + r.path + " [" + r.endpoint + "] " + what + ": " + why +
                  "\n  body: " + platform::RedactForLog(body, kShownBodyBytes));
  };
  for (const auto& r : exchanges) {
    if (r.path.rfind("/api/", 0) != 0) continue;
    if (r.endpoint.empty()) {
      report(r, "request", "not an endpoint of the contract", r.body);
      continue;
    }
    if (const std::string name = RequestSchemaFor(r.endpoint); !name.empty()) {
      const std::string why = Check(schemas, name, r.body);
      if (!why.empty()) {
        report(r, "request", why, r.body);
      } else if (r.status == 422) {
        report(r, "request",
               "the simulator refused it (" + r.response_body + ") but " + name + " accepts it",
               r.body);
      }
    }
    if (r.injected) continue;
    if (const std::string name = ResponseSchemaFor(r.endpoint, r.status); !name.empty()) {
      const std::string why = Check(schemas, name, r.response_body);
      if (!why.empty()) report(r, "answer HTTP " + std::to_string(r.status), why, r.response_body);
    }
  }
  if (found > max_reported) {
    out.push_back("... and " + std::to_string(found - max_reported) + " more");
  }
  return out;
}

}  // namespace taolie::testing
