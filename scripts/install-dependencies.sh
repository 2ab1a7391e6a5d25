#!/usr/bin/env bash
# Installs what building and running SwiftGateway needs on Debian/Ubuntu, if it is missing.
set -euo pipefail

packages=()
command -v apache2 >/dev/null 2>&1 || [ -x /usr/sbin/apache2 ] || packages+=(apache2)
command -v apxs >/dev/null 2>&1 || packages+=(apache2-dev)
command -v curl >/dev/null 2>&1 || packages+=(curl)
# libstdc++'s development link: release programs link the Swift runtime statically (-lstdc++)
command -v g++ >/dev/null 2>&1 || packages+=(g++)
# the integration tests watch Apache's system calls in one test (test_client_keepalive.py)
command -v strace >/dev/null 2>&1 || packages+=(strace)
# ss, with which the integration tests read a listening socket's backlog
command -v ss >/dev/null 2>&1 || packages+=(iproute2)
command -v python3 >/dev/null 2>&1 || packages+=(python3 python3-pip)
# make test checks the C code's format (.clang-format)
command -v clang-format >/dev/null 2>&1 || packages+=(clang-format)
# make fuzz builds its C target with Debian's clang and libFuzzer (docs/testing.md)
[ -x /usr/bin/clang ] || packages+=(clang)
# the integration tests run the example program behind nginx too (test_elsewhere.py)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || packages+=(nginx)
if [ ${#packages[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${packages[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # Debian starts (and enables) a service its package installs: apache2 and nginx would
    # take port 80. The tests start their own servers, so no service is started during the
    # install (a policy-rc.d that refuses every start, unless the machine already has one:
    # containers do) and a new nginx is not enabled at boot either.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        trap '$sudo rm -f "$policy"' EXIT
        printf '#!/bin/sh\n# scripts/install-dependencies.sh: no service starts during its install\nexit 101\n' \
            | $sudo tee "$policy" >/dev/null
        $sudo chmod 755 "$policy"
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    if [ -f "$policy" ] && grep -q 'scripts/install-dependencies.sh' "$policy"; then
        $sudo rm -f "$policy"
        trap - EXIT
    fi
    if [[ " ${packages[*]} " == *" nginx "* ]]; then
        if [ -d /run/systemd/system ]; then
            $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
        else
            $sudo update-rc.d nginx disable >/dev/null 2>&1 || true
        fi
    fi
fi
# the integration tests' runner and HTTP clients (h2: HTTP/2 streams reset mid-upload)
if ! python3 -c 'import pytest, requests, h2' 2>/dev/null; then
    python3 -m pip install -q pytest requests h2 2>/dev/null \
        || python3 -m pip install -q --break-system-packages pytest requests h2
fi
if ! command -v swift >/dev/null 2>&1; then
    echo "error: swift is not on PATH; install a Swift 6 toolchain first" >&2
    exit 1
fi
