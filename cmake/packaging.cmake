# What `cmake --install` puts where, and the Debian package `cpack -G DEB` builds from it
# (docs/ferryd.md, "Running under systemd"). Included from the top-level CMakeLists.txt after
# every target is defined. The package installs under /usr:
#
#   bin/ferryd, bin/ferryctl                     the daemon and the admin CLI
#   lib/libferry_client.a, include/ferry/...,    the client library for station software
#     lib/cmake/ferry/                             (component ferry_dev, ctl/package.cmake)
#   lib/systemd/system/ferryd@.service           one unit instance per node config
#   lib/sysusers.d/ferry.conf                    the ferry user and group
#   lib/tmpfiles.d/ferry.conf                    /var/lib/ferry and /etc/ferry
#   share/doc/ferry/                             the docs, and examples/ (station, relay, hub)
#
# The unit, sysusers and tmpfiles paths are fixed (systemd reads them under /usr/lib whatever
# the multiarch library directory is). The package puts nothing in /etc: configs are the
# operator's, made from the examples.
include(GNUInstallDirs)

set(ferry_deploy_dir ${PROJECT_SOURCE_DIR}/deploy)

install(TARGETS ferryd ferryctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT ferry)

install(FILES ${ferry_deploy_dir}/systemd/ferryd@.service
  DESTINATION lib/systemd/system COMPONENT ferry)
install(FILES ${ferry_deploy_dir}/systemd/ferry.sysusers.conf
  DESTINATION lib/sysusers.d RENAME ferry.conf COMPONENT ferry)
install(FILES ${ferry_deploy_dir}/systemd/ferry.tmpfiles.conf
  DESTINATION lib/tmpfiles.d RENAME ferry.conf COMPONENT ferry)

install(FILES
  ${ferry_deploy_dir}/config/station.toml
  ${ferry_deploy_dir}/config/relay.toml
  ${ferry_deploy_dir}/config/hub.toml
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT ferry)
file(GLOB ferry_docs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md
  ${PROJECT_SOURCE_DIR}/docs/*.png)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${ferry_docs}
  DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT ferry)

# Maintainer scripts. postinst creates the user and the directories (systemd-sysusers and
# systemd-tmpfiles, or adduser on a system without them) and restarts running instances after an
# upgrade; prerm stops them before a removal. Nothing ever deletes /var/lib/ferry: it holds
# acknowledged transactions, and a purge must not lose them.
set(ferry_debian_dir ${PROJECT_BINARY_DIR}/debian)
file(WRITE ${ferry_debian_dir}/postinst [=[#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers ferry.conf
  elif ! getent passwd ferry >/dev/null; then
    adduser --system --group --home /var/lib/ferry --no-create-home ferry
  fi
  if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create ferry.conf
  else
    install -d -m 0750 -o ferry -g ferry /var/lib/ferry
    install -d -m 0750 -o root -g ferry /etc/ferry
  fi
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    if [ -n "$2" ]; then
      systemctl try-restart 'ferryd@*.service' || true
    fi
  fi
fi
exit 0
]=])
file(WRITE ${ferry_debian_dir}/prerm [=[#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop 'ferryd@*.service' || true
fi
exit 0
]=])
file(WRITE ${ferry_debian_dir}/postrm [=[#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
]=])
foreach(script postinst prerm postrm)
  file(CHMOD ${ferry_debian_dir}/${script} PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
    GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ferry)
set(CPACK_PACKAGE_VENDOR "ferry")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "ferry maintainers <ferry-maintainers@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "offline-first store-and-forward of signed transactions for islands")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
# One package with every component: the daemon, the CLI and the client library.
set(CPACK_DEB_COMPONENT_INSTALL OFF)

set(CPACK_DEBIAN_PACKAGE_NAME ferry)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${CPACK_PACKAGE_CONTACT})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The synopsis line is CPACK_PACKAGE_DESCRIPTION_SUMMARY; this is the extended description.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
  "ferry keeps a station's transactions (applications, filings, certificates) signed and durable
on the station, and forwards them to the hub through relays whenever a link is up, and the
hub's decisions back. This package holds the node daemon ferryd (a systemd template unit
ferryd@NAME.service, one instance per /etc/ferry/NAME.toml), the admin tool ferryctl, the
client library for station software with its headers and CMake package, and example configs.")
# Run-time dependencies come from the shared libraries ferryd and ferryctl link (dpkg-shlibdeps,
# from dpkg-dev). The client library's users also need its headers' dependencies.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser | systemd")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS systemd)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS
  "libzmq3-dev, cppzmq-dev, libmsgpack-cxx-dev, libexpected-dev, nlohmann-json3-dev")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${ferry_debian_dir}/postinst ${ferry_debian_dir}/prerm ${ferry_debian_dir}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
