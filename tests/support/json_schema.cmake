# The JSON Schema validator of the tests (tests/support/json_schema.h) and where the contract's
# schemas live: the repository's schemas/ folder, through TAOLIE_SCHEMA_DIR (no absolute path is
# committed). Included from tests/platform/CMakeLists.txt; the e2e harness links it too.
if(NOT TARGET taolie_json_schema)
  add_library(taolie_json_schema STATIC ${CMAKE_SOURCE_DIR}/tests/support/json_schema.cc
                                        ${CMAKE_SOURCE_DIR}/tests/support/contract_check.cc)
  target_include_directories(taolie_json_schema PUBLIC ${CMAKE_SOURCE_DIR}/src
                                                       ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(taolie_json_schema
    PUBLIC taolie_common nlohmann_json::nlohmann_json
    PRIVATE taolie_platform)  # RedactForLog, to mask secrets in a failure's message
  target_compile_definitions(taolie_json_schema PUBLIC
                             TAOLIE_SCHEMA_DIR="${CMAKE_SOURCE_DIR}/schemas")
endif()
