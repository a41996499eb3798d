# Install rules and the Debian package (CPack) of taolie-host-agent. Included by the top
# CMakeLists.txt once the agent's target exists.
#
#   cmake --install build [--prefix /usr]   binary, unit, default config (only when none
#                                           exists), docs
#   cd build && cpack -G DEB                taolie-host-agent_<version>_<arch>.deb (prefix /usr)
#
# The unit's ExecStart names the binary under the prefix the files are installed to: it is
# written at install time from deploy/taolie-host-agent.service.in, so a package (prefix /usr)
# and `cmake --install` into /usr/local both start the binary they installed.
include(GNUInstallDirs)

# Installing (and cpack) needs only the agent's binary built, not every test: build it first
# (`cmake --build build --target taolie-host-agent`), then install or package.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

# Fixed, as in the agent's default --config, the unit and the maintainer scripts.
set(TAOLIE_CONFIG_DIR /etc/taolie-host-agent)
# share/doc/taolie-host-agent (GNUInstallDirs' DOCDIR would use the project's name).
set(TAOLIE_DOC_DIR ${CMAKE_INSTALL_DATAROOTDIR}/doc/taolie-host-agent)
set(TAOLIE_PACKAGE_MAINTAINER "TAOLIE host agent maintainers <maintainers@taolie.invalid>"
    CACHE STRING "Maintainer field of the Debian package")
set(_taolie_pkg_dir ${CMAKE_CURRENT_LIST_DIR})

install(TARGETS taolie-host-agent RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The unit, configured with the prefix in effect when the files are installed (cpack installs
# with prefix /usr under a staging DESTDIR).
install(CODE "
  set(TAOLIE_UNIT_TEMPLATE \"${CMAKE_SOURCE_DIR}/deploy/taolie-host-agent.service.in\")
  set(TAOLIE_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
")
install(SCRIPT ${_taolie_pkg_dir}/install_unit.cmake)

# The default configuration. In the package it is a dpkg conffile (an edited copy is never
# replaced); a plain `cmake --install` copies it only when no config.yaml is there yet.
install(CODE "
  set(TAOLIE_DEFAULT_CONFIG \"${CMAKE_SOURCE_DIR}/deploy/config.yaml\")
  set(TAOLIE_CONFIG_DIR \"${TAOLIE_CONFIG_DIR}\")
")
install(SCRIPT ${_taolie_pkg_dir}/install_config.cmake)

install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/deploy/config.yaml
        DESTINATION ${TAOLIE_DOC_DIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION ${TAOLIE_DOC_DIR}/docs
        FILES_MATCHING PATTERN "*.md")

# The unit as it will be installed with this build's prefix, for `systemd-analyze verify`
# from the build tree (the installed file is the one written above).
set(TAOLIE_UNIT_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
set(TAOLIE_UNIT_PREFIX ${CMAKE_INSTALL_PREFIX})
configure_file(${CMAKE_SOURCE_DIR}/deploy/taolie-host-agent.service.in
               ${CMAKE_BINARY_DIR}/taolie-host-agent.service @ONLY)

# Debian package.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME taolie-host-agent)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${TAOLIE_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "TAOLIE host agent: rents this machine's GPUs out through the TAOLIE platform")
set(CPACK_PACKAGE_DESCRIPTION
    "Registers the host with the TAOLIE platform, runs renters' containers with their GPUs\n\
pinned and their ports published, meters usage and watches every GPU's health. State lives\n\
in PostgreSQL: a private cluster the agent manages, or a database on the distribution's\n\
server (deploy/setup.sh sets either up).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies come from dpkg-shlibdeps (package dpkg-dev); these are the tools the
# agent runs: iptables for the rental firewall, CA certificates for the platform's TLS.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "iptables, ca-certificates")
# Docker runs the rentals; PostgreSQL's server binaries serve the managed database (the
# default) or the distribution's cluster. A host with a remote database needs no PostgreSQL.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "docker.io | docker-ce, postgresql")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${_taolie_pkg_dir}/debian/postinst ${_taolie_pkg_dir}/debian/prerm
    ${_taolie_pkg_dir}/debian/postrm ${_taolie_pkg_dir}/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
