# Writes edge.service and the logrotate snippet at install time, so their paths name the prefix
# given to `cmake --install --prefix`, not the one configured, and a /usr prefix puts the
# snippet under /etc. Expects EDGE_DIST_DIR, EDGE_BINDIR, EDGE_SYSCONFDIR and EDGE_DATADIR
# (relative to the prefix, or absolute). file(INSTALL) adds DESTDIR itself; configure_file does not.
function(edge_under_prefix out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  elseif(dir STREQUAL "etc" AND CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(${out} "/etc" PARENT_SCOPE)  # as GNUInstallDirs does for /usr
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

edge_under_prefix(EDGE_BIN_DIR "${EDGE_BINDIR}")
edge_under_prefix(EDGE_ETC "${EDGE_SYSCONFDIR}")
edge_under_prefix(EDGE_SHARE "${EDGE_DATADIR}")
set(EDGE_CONFIG_DIR "${EDGE_ETC}/edge")
set(EDGE_DOC_DIR "${EDGE_SHARE}/doc/edge")
set(unit "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/lib/systemd/system/edge.service")
message(STATUS "Installing: ${unit}")
configure_file("${EDGE_DIST_DIR}/edge.service.in" "${unit}" @ONLY)
file(INSTALL "${EDGE_DIST_DIR}/edge.logrotate" DESTINATION "${EDGE_ETC}/logrotate.d" RENAME edge)
