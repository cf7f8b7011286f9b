#!/bin/bash
# Run the test suite on every supported Python installed on this machine.
#
#   scripts/test-pythons.sh [--ci | --parity] [--only 3.12[,3.13]] [-- PYTEST-ARGS...]
#
# The supported versions are the "Programming Language :: Python :: 3.X" trove
# classifiers in pyproject.toml, so the classifiers list what is tested.
# For each version the first working interpreter is used, from: python3.X on
# PATH, then ${PYENV_ROOT:-~/.pyenv}/versions/3.X*/bin/python3.X and
# /root/.pyenv/versions/3.X*/bin/python3.X (newest patch release first).
# Each gets a virtualenv, .venv-py3X (re-installed with -e '.[test]' when
# pyproject.toml changes); the default Python uses .venv (made by
# scripts/bootstrap.sh) when it exists. A missing version is skipped with a
# line saying so.
#
#   (no flag)  the whole suite on every version found
#   --parity   only the parity and drop-in tests (pytest -m parity: the
#              getaddrinfo, patch, glibc differential and hosts tests)
#   --ci       what CI runs: the parity tests on every other version found,
#              then the whole suite on the default Python (.venv, or python3)
#
# The default Python's run comes last, so the output ends with its pytest
# summary line. Exits non-zero when any run fails or no Python was found.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=full
only=""
pytest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --ci) mode=ci ;;
        --parity) mode=parity ;;
        --only) only="${2:?--only needs versions, e.g. 3.12,3.13}"; shift ;;
        --only=*) only="${1#--only=}" ;;
        --) shift; pytest_args=("$@"); break ;;
        -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "test-pythons: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { printf 'test-pythons: %s\n' "$*"; }

mapfile -t supported < <(grep -o '"Programming Language :: Python :: 3\.[0-9]\+"' pyproject.toml |
    grep -o '3\.[0-9]\+' | sort -t. -k2,2n -u)
if [ ${#supported[@]} = 0 ]; then
    say "no 'Programming Language :: Python :: 3.X' classifiers in pyproject.toml" >&2
    exit 2
fi
versions=("${supported[@]}")
if [ -n "$only" ]; then
    versions=()
    for v in $(tr ',' ' ' <<<"$only"); do
        if printf '%s\n' "${supported[@]}" | grep -Fqx "$v"; then
            versions+=("$v")
        else
            say "Python $v is not a supported version (${supported[*]}), skipped"
        fi
    done
fi

# find_python VERSION: prints the executable of the first candidate that runs,
# is VERSION and can make a virtualenv (a pyenv shim for a version that is
# not selected fails to run and is passed over).
find_python() {
    local v=$1 cand exe roots=("${PYENV_ROOT:-$HOME/.pyenv}" /root/.pyenv)
    for cand in "python$v" $(for r in "${roots[@]}"; do
        ls -d "$r"/versions/"$v".*/bin/python"$v" 2>/dev/null
    done | sort -rV); do
        exe=$("$cand" -c 'import sys, venv, ensurepip
if "%d.%d" % sys.version_info[:2] == sys.argv[1]: print(sys.executable)' "$v" 2>/dev/null) || continue
        if [ -n "$exe" ]; then
            echo "$exe"
            return 0
        fi
    done
    return 1
}

# The default Python: the one of .venv (bootstrap.sh), else python3.
if [ -x .venv/bin/python ]; then
    default_python=.venv/bin/python
else
    default_python=${PYTHON:-python3}
fi
default_version=$("$default_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)

# venv_for VERSION PY: prints the python of a ready virtualenv for PY.
venv_for() {
    local v=$1 py=$2 dir=".venv-py${1/./}"
    if [ "$v" = "$default_version" ] && [ "$default_python" = .venv/bin/python ]; then
        echo .venv/bin/python
        return 0
    fi
    local want
    want="$(cksum <pyproject.toml | cut -d' ' -f1) $py"
    if [ ! -x "$dir/bin/python" ] || [ "$(cat "$dir/.safedns-installed" 2>/dev/null)" != "$want" ]; then
        rm -rf "$dir"
        if ! { "$py" -m venv "$dir" &&
            "$dir/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'; } \
            >"$dir.log" 2>&1; then
            cat "$dir.log" >&2
            return 1
        fi
        echo "$want" >"$dir/.safedns-installed"
        rm -f "$dir.log"
    fi
    echo "$dir/bin/python"
}

# What runs: VERSION SCOPE pairs, the default version last.
plan=()
for v in "${versions[@]}"; do
    [ "$v" = "$default_version" ] && continue
    case "$mode" in
        full) plan+=("$v full") ;;
        *) plan+=("$v parity") ;;
    esac
done
if [ -n "$default_version" ] && printf '%s\n' "${versions[@]}" | grep -Fqx "$default_version"; then
    case "$mode" in
        parity) plan+=("$default_version parity") ;;
        *) plan+=("$default_version full") ;;
    esac
elif [ -n "$default_version" ] && ! printf '%s\n' "${supported[@]}" | grep -Fqx "$default_version"; then
    say "the default Python ($default_python) is $default_version, not a supported version"
fi

failed=0
ran=0
summary=()
last=$(( ${#plan[@]} - 1 ))
for i in "${!plan[@]}"; do
    read -r v scope <<<"${plan[$i]}"
    if [ "$v" = "$default_version" ] && [ "$default_python" = .venv/bin/python ]; then
        py=.venv/bin/python
    elif ! py=$(find_python "$v"); then
        say "Python $v: not installed (no working python$v on PATH or under ~/.pyenv/versions), skipped"
        summary+=("Python $v: skipped, not installed")
        continue
    fi
    say "Python $v ($py): preparing its virtualenv"
    if ! vpy=$(venv_for "$v" "$py"); then
        say "Python $v: could not make its virtualenv" >&2
        summary+=("Python $v: FAILED to install")
        failed=1
        continue
    fi
    if [ "$i" = "$last" ] && [ ${#summary[@]} -gt 0 ]; then
        say "results so far:"
        printf '  %s\n' "${summary[@]}"
    fi
    args=()
    [ "$scope" = parity ] && args=(-m parity)
    say "Python $v ($("$vpy" -c 'import sys; print(sys.version.split()[0])')): $( [ "$scope" = parity ] && echo "parity and drop-in tests" || echo "whole suite")"
    log=$(mktemp)
    "$vpy" -m pytest "${args[@]}" "${pytest_args[@]}" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    ran=$((ran + 1))
    closing=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1)
    rm -f "$log"
    if [ "$status" != 0 ]; then
        failed=1
        summary+=("Python $v $scope: FAILED (exit $status): $closing")
    else
        summary+=("Python $v $scope: $closing")
    fi
done

if [ "$ran" = 0 ]; then
    say "no test ran: no supported Python found among ${versions[*]:-(none selected)}" >&2
    exit 1
fi
exit "$failed"
