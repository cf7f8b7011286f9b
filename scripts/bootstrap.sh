#!/bin/sh
# Install safedns into ./.venv. With --test, also everything the test suite
# needs: dnsmasq and iproute2 from Debian (when missing and we are root) and
# the Python test dependencies.
set -eu
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

apt_updated=0
apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        if [ "$apt_updated" = 0 ]; then
            apt-get update -qq
            apt_updated=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "bootstrap: please install these Debian packages: $*" >&2
    fi
}

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1 || ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3 python3-venv
fi

if [ "$with_tests" = 1 ]; then
    missing=""
    command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || missing="$missing dnsmasq-base"
    command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing="$missing iproute2"
    if [ -n "$missing" ]; then
        # shellcheck disable=SC2086
        apt_install $missing
    fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
if [ "$with_tests" = 1 ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
else
    .venv/bin/python -m pip install -q --disable-pip-version-check .
fi
