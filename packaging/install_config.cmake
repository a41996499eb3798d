# Run by `cmake --install` and cpack (install(SCRIPT)): installs the default config.yaml.
# Into a staging DESTDIR (cpack: the package's conffile) always; onto a live system only when
# no config.yaml exists, so an owner's edited file is never replaced. Set before:
# TAOLIE_DEFAULT_CONFIG, TAOLIE_CONFIG_DIR (absolute).
set(_config "${TAOLIE_CONFIG_DIR}/config.yaml")
if("$ENV{DESTDIR}" STREQUAL "" AND EXISTS "${_config}")
  message(STATUS "Keeping: ${_config} (exists; the default is in the docs directory)")
else()
  message(STATUS "Installing: $ENV{DESTDIR}${_config}")
  file(MAKE_DIRECTORY "$ENV{DESTDIR}${TAOLIE_CONFIG_DIR}")
  file(CHMOD "$ENV{DESTDIR}${TAOLIE_CONFIG_DIR}"
       PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE)
  file(COPY_FILE "${TAOLIE_DEFAULT_CONFIG}" "$ENV{DESTDIR}${_config}")
  # 0640: the file may hold secrets once edited (the agent runs as root).
  file(CHMOD "$ENV{DESTDIR}${_config}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${_config}")
endif()
