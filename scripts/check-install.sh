#!/usr/bin/env bash
# `make install-test`: checks README's installation on this machine's own Apache, then undoes it.
#
#   make install  →  a2enmod swift_gateway  →  apache2ctl configtest (the module loaded)
#   conf/swift_gateway.conf with its examples uncommented (pointed at PROGRAM)  →  configtest
#   an edited swift_gateway.conf  →  make install  →  still the edited one
#   a2dismod swift_gateway  →  configtest
#
# It never starts, stops or restarts the system's Apache, and leaves its configuration as it
# found it, also when a step fails: every file it may touch is saved first and put back at exit
# (trap), and a listing of Apache's directories taken before must match the one after.
# Needs root (it writes where Apache's files live); as another user it says so and skips.
#
# usage: scripts/check-install.sh PROGRAM   (a built SwiftGateway program, e.g. ExampleSite)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
program=${1:?usage: $0 PROGRAM (a built SwiftGateway program, for the uncommented example)}
make=${MAKE:-make}
apxs=${APXS:-apxs}

if [ "$(id -u)" -ne 0 ]; then
    echo "check-install: SKIPPED: run as root (it installs into the system's Apache and undoes it)"
    exit 0
fi
for tool in a2enmod a2dismod apache2ctl "$apxs"; do
    command -v "$tool" >/dev/null || { echo "check-install: $tool is missing (apache2, apache2-dev)" >&2; exit 1; }
done

sysconf=$("$apxs" -q SYSCONFDIR)
libexec=$("$apxs" -q LIBEXECDIR)
state=/var/lib/apache2/module
# Everything make install and a2enmod/a2dismod may create or change.
touched=(
    "$libexec/mod_swift_gateway.so"
    "$sysconf/mods-available/swift_gateway.load"
    "$sysconf/mods-available/swift_gateway.conf"
    "$sysconf/mods-enabled/swift_gateway.load"
    "$sysconf/mods-enabled/swift_gateway.conf"
    "$state/enabled_by_admin/swift_gateway"
    "$state/disabled_by_admin/swift_gateway"
    "$state/enabled_by_maint/swift_gateway"
    "$state/disabled_by_maint/swift_gateway"
)

# What Apache's directories hold: names, types, modes, link targets and file contents.
listing() {
    find "$sysconf" "$libexec" /var/lib/apache2 \( -type d -printf '%p d %m\n' \) -o \
        \( -type l -printf '%p l %l\n' \) -o \( -type f -printf '%p f %m ' -exec md5sum {} \; \) \
        2>/dev/null | sed 's/  .*$//' | sort
}

work=$(mktemp -d /tmp/sg-check-install-XXXXXX)
listing >"$work/before"
mkdir "$work/saved"
absent_dirs=()
for path in "${touched[@]}"; do
    [ -d "$(dirname "$path")" ] || absent_dirs+=("$(dirname "$path")")
done
for path in "${touched[@]}"; do
    if [ -e "$path" ] || [ -L "$path" ]; then
        mkdir -p "$work/saved$(dirname "$path")"
        cp -a "$path" "$work/saved$path"
    fi
done

restore() {
    status=$?
    set +e
    for path in "${touched[@]}"; do
        rm -f "$path"
        if [ -e "$work/saved$path" ] || [ -L "$work/saved$path" ]; then
            cp -a "$work/saved$path" "$path"
        fi
    done
    for directory in "${absent_dirs[@]}"; do
        rmdir "$directory" 2>/dev/null
    done
    listing >"$work/after"
    if ! diff -u "$work/before" "$work/after" >"$work/diff"; then
        echo "check-install: FAILED: Apache's files differ from before the check:" >&2
        cat "$work/diff" >&2
        status=1
    elif [ "$status" -eq 0 ]; then
        echo "check-install: passed; Apache's files are as they were"
    else
        echo "check-install: FAILED; Apache's files are as they were" >&2
    fi
    rm -rf "$work"
    exit "$status"
}
trap restore EXIT

step() { echo "check-install: $*"; }

step "make install"
"$make" -C "$repo" --no-print-directory install APXS="$apxs"
test -f "$libexec/mod_swift_gateway.so"
test -f "$sysconf/mods-available/swift_gateway.load"
test -f "$sysconf/mods-available/swift_gateway.conf"

step "a2enmod swift_gateway"
a2enmod -q swift_gateway
test -L "$sysconf/mods-enabled/swift_gateway.load"
test -L "$sysconf/mods-enabled/swift_gateway.conf"

step "apache2ctl configtest"
apache2ctl configtest
modules=$(apache2ctl -M 2>/dev/null)
grep -q '^ swift_gateway_module ' <<<"$modules" \
    || { echo "check-install: the enabled configuration does not load swift_gateway_module" >&2; exit 1; }

# The starting point conf/swift_gateway.conf offers, every example in it uncommented (a repeated
# group's name numbered, the accounts Apache's own, the program the one given), must be a valid
# configuration too: given to apache2ctl -t with -c, so nothing is written under $sysconf.
step "apache2ctl -t with conf/swift_gateway.conf's examples uncommented"
awk '
    /^    #(Swift|<|    |<\/)/ { sub(/^    #/, "    ") }
    /^    SwiftDaemonProcess mysite / { seen[$2]++; if (seen[$2] > 1) $2 = $2 "-" seen[$2] }
    { gsub(/user=mysite group=mysite/, "user=www-data group=www-data")
      gsub(/\/srv\/mysite\/\.build\/release\/MySite/, program)
      gsub(/\/srv\/mysite\/\.build\/release/, directory)
      print }
' program="$program" directory="$(dirname "$program")" "$repo/conf/swift_gateway.conf" >"$work/uncommented.conf"
grep -q '^ *SwiftDaemonProcess' "$work/uncommented.conf" \
    || { echo "check-install: no example uncommented in conf/swift_gateway.conf" >&2; exit 1; }
apache2ctl -t -c "Include $work/uncommented.conf" \
    || { echo "check-install: conf/swift_gateway.conf's examples, uncommented:" >&2; cat -n "$work/uncommented.conf" >&2; exit 1; }

step "make install again keeps an edited swift_gateway.conf"
echo "# edited by scripts/check-install.sh" >>"$sysconf/mods-available/swift_gateway.conf"
"$make" -C "$repo" --no-print-directory install APXS="$apxs" >/dev/null
grep -q '^# edited by scripts/check-install.sh' "$sysconf/mods-available/swift_gateway.conf" \
    || { echo "check-install: make install overwrote an edited swift_gateway.conf" >&2; exit 1; }

step "a2dismod swift_gateway"
a2dismod -q swift_gateway
apache2ctl configtest
