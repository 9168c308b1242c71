#!/bin/sh
# cmake --install into a temporary prefix: the binaries, the example configuration (which edge
# accepts), the systemd unit (verified by systemd-analyze when it is there) and the logrotate
# snippet. Usage: install_test.sh BUILD_DIR
set -eu
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "install_test: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null

for f in bin/edge bin/edge-app; do
  [ -x "$prefix/$f" ] || fail "$f is not installed or not executable"
done
for f in share/edge/edge.example.yaml lib/systemd/system/edge.service etc/logrotate.d/edge share/doc/edge/README.md; do
  [ -f "$prefix/$f" ] || fail "$f is not installed"
done

"$prefix/bin/edge" --config "$prefix/share/edge/edge.example.yaml" --check >/dev/null ||
  fail "the example configuration does not pass edge --check"

unit="$prefix/lib/systemd/system/edge.service"
grep -q "^ExecStart=$prefix/bin/edge --config $prefix/etc/edge/edge.yaml\$" "$unit" || fail "ExecStart does not name the installed edge: $(grep ExecStart= "$unit")"
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$unit" || fail "no ExecReload"
grep -q '^KillSignal=SIGTERM$' "$unit" || fail "no KillSignal"
grep -q 'SIGUSR1' "$prefix/etc/logrotate.d/edge" || fail "logrotate does not send SIGUSR1"

if command -v systemd-analyze >/dev/null 2>&1; then
  # The unit names a configuration that an operator copies in place; verify checks the unit.
  out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $out"
  # verify warns without failing on some errors; any line about the unit itself is one.
  if printf '%s\n' "$out" | grep -q "edge.service"; then fail "systemd-analyze verify: $out"; fi
else
  echo "install_test: systemd-analyze not found; the unit is not verified"
fi
echo "install_test: ok"
