# Writes edge.service at install time, so its paths name the prefix given to `cmake --install
# --prefix`, not the one configured. Expects EDGE_UNIT_TEMPLATE, EDGE_BINDIR, EDGE_SYSCONFDIR and
# EDGE_DATADIR (relative to the prefix, or absolute).
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
configure_file("${EDGE_UNIT_TEMPLATE}" "${unit}" @ONLY)
