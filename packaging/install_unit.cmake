# Run by `cmake --install` and cpack (install(SCRIPT)): writes the systemd unit with the
# binary's path under the prefix being installed to. Set before: TAOLIE_UNIT_TEMPLATE,
# TAOLIE_BINDIR (relative to the prefix, or absolute).
if(IS_ABSOLUTE "${TAOLIE_BINDIR}")
  set(TAOLIE_UNIT_BINDIR "${TAOLIE_BINDIR}")
else()
  set(TAOLIE_UNIT_BINDIR "${CMAKE_INSTALL_PREFIX}/${TAOLIE_BINDIR}")
endif()
set(TAOLIE_UNIT_PREFIX "${CMAKE_INSTALL_PREFIX}")
# systemd reads units from <prefix>/lib/systemd/system for /usr and /usr/local.
set(_unit "${CMAKE_INSTALL_PREFIX}/lib/systemd/system/taolie-host-agent.service")
message(STATUS "Installing: $ENV{DESTDIR}${_unit} (ExecStart ${TAOLIE_UNIT_BINDIR}/taolie-host-agent)")
configure_file("${TAOLIE_UNIT_TEMPLATE}" "$ENV{DESTDIR}${_unit}" @ONLY)
file(CHMOD "$ENV{DESTDIR}${_unit}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${_unit}")
