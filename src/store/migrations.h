#pragma once
// Numbered schema migrations for the agent's PostgreSQL database. PgStore::Create applies the
// ones not yet recorded in schema_migrations, each in its own transaction, in version order.
// A migration, once released, is never edited: schema changes are new migrations.
#include <string_view>
#include <vector>

namespace taolie::store {

struct Migration {
  int version = 0;        // 1, 2, 3 ... strictly increasing
  std::string_view name;  // short description, recorded in schema_migrations
  std::string_view sql;   // one or more statements, no parameters
};

// All migrations, ordered by version.
const std::vector<Migration>& Migrations();

}  // namespace taolie::store
