#!/bin/sh
# airgap-installer entry point: a POSIX sh preamble, then Python (the same file).
# The sh part finds python3 (or EL8's platform-python); on a host without one (CentOS 7 minimal) it
# installs python3 from this bundle's own repo/ with a temporary repo definition, then re-executes
# this file with that interpreter. Python sees the sh part as a string literal.
''''true
set -e
here=$(cd "$(dirname "$0")" && pwd)
find_python() {
    for p in ${AIRGAP_PYTHON_CANDIDATES:-python3 /usr/libexec/platform-python /usr/bin/python3}; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 6))' 2>/dev/null; then
            command -v "$p"
            return 0
        fi
    done
    return 1
}
py=$(find_python || true)
if [ -z "$py" ]; then
    if [ "${AIRGAP_NO_PYTHON_INSTALL:-}" = 1 ]; then
        echo "error: no python3 found and AIRGAP_NO_PYTHON_INSTALL=1" >&2
        exit 2
    fi
    if [ ! -d "$here/repo/repodata" ]; then
        echo "error: no python3 on this host and no repo/ in $here to install it from" >&2
        exit 2
    fi
    echo "installing python3 from the bundle's repository ..." >&2
    ${AIRGAP_YUM:-yum} -y --disablerepo='*' --repofrompath="airgap-bootstrap,file://$here/repo" \
        --enablerepo=airgap-bootstrap --setopt=airgap-bootstrap.gpgcheck=0 install python3 >&2 || {
        echo "error: installing python3 from $here/repo failed (see the yum output above); install python3 and run $0 again" >&2
        exit 2
    }
    py=$(find_python || true)
    if [ -z "$py" ]; then
        echo "error: python3 is still missing after installing it" >&2
        exit 2
    fi
fi
exec "$py" "$0" "$@"
'''
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from installer.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
