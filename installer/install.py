#!/bin/sh
# airgap-installer entry point: a POSIX sh preamble, then Python (the same file).
# The sh part finds python3 (or EL8's platform-python). On a host without one (CentOS 7 minimal), only the
# commands that change hosts anyway (install, the default, reset, add-node, remove-node, and the command
# modules that take the host lock, e.g. node apply; see changes_hosts) install it: they say so, check the
# bundle's SHA256SUMS, install python3 from the OS media (--iso/--media, or the disc in /dev/sr0) and this
# bundle's own repo/ with temporary repo definitions, and re-execute this file with that interpreter.
# --help, --version, plan, status and read-only command modules change nothing: they say how to proceed and stop.
# Python sees the sh part as a string literal.
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
module_of() {
    # the installer/commands/ module whose COMMAND is $1 (pure sh: no grep on a minimal host)
    for f in "$here"/installer/commands/*.py; do
        [ -f "$f" ] || continue
        while IFS= read -r line || [ -n "$line" ]; do
            case "$line" in "COMMAND = \"$1\""*|"COMMAND = '$1'"*) echo "$f"; return 0 ;; esac
        done < "$f"
    done
    return 1
}
module_value() {
    # module_value FILE NAME: the text after "NAME = " on its top-level line (empty when absent)
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in "$2 = "*) echo "${line#"$2 = "}"; return 0 ;; esac
    done < "$1"
}
command_of() {
    # what the Python part will do: -h/--help/--version anywhere, else the first command word (with the
    # sub-action after it for a command module, e.g. "node apply"), else install
    for a in "$@"; do
        case "$a" in -h|--help|--version) echo "$a"; return 0 ;; esac
    done
    word=""
    for a in "$@"; do
        case "$a" in -*) continue ;; esac
        if [ -n "$word" ]; then echo "$word $a"; return 0; fi
        case "$a" in
            install|plan|status|reset|add-node|remove-node) echo "$a"; return 0 ;;
        esac
        if module_of "$a" >/dev/null; then word=$a; fi
    done
    echo "${word:-install}"
}
changes_hosts() {
    # true for the commands that change hosts anyway (they may install python3 first): install, reset,
    # add-node, remove-node, and a command module with LOCKS (default True) unless its sub-action is one of
    # its READ_ONLY_ACTIONS; plan, status, --help, --version and read-only modules (LOCKS = False) change nothing
    case "$1" in
        install|reset|add-node|remove-node) return 0 ;;
        plan|status|-h|--help|--version) return 1 ;;
    esac
    f=$(module_of "${1%% *}") || return 1
    case "$(module_value "$f" LOCKS)" in False*) return 1 ;; esac
    case "$1" in
        *" "*) case "$(module_value "$f" READ_ONLY_ACTIONS)" in
                   *\"${1#* }\"*|*\'${1#* }\'*) return 1 ;;
               esac ;;
    esac
    return 0
}
media_arg() {
    # the OS media named on the command line, as --iso=FILE or --media=DIR (empty: the optical drive)
    while [ $# -gt 0 ]; do
        case "$1" in
            --iso=*|--media=*) echo "$1"; return 0 ;;
            --iso|--media) [ $# -ge 2 ] && echo "$1=$2"; return 0 ;;
        esac
        shift
    done
}
install_python() {
    # python3 comes from the OS media where it is there (CentOS 7.7+ has it), else from the bundle's repo/
    if [ ! -d "$here/repo/repodata" ]; then
        echo "error: no python3 on this host and no repo/ in $here to install it from" >&2
        return 2
    fi
    # nothing is installed from a bundle that does not match its checksums
    if ! (cd "$here" && sha256sum --quiet -c SHA256SUMS) >&2; then
        echo "error: the bundle in $here does not match its SHA256SUMS (damaged or altered in transit): copy it again; nothing was installed" >&2
        return 2
    fi
    media=$(media_arg "$@" || true)
    case "$media" in
        --media=*) from=${media#--media=} ;;
        --iso=*) from=${media#--iso=} ;;
        *) from=""; if [ -b /dev/sr0 ]; then from=/dev/sr0; fi ;;
    esac
    echo "python3 is missing: installing it from $here/repo${from:+ and $from} (the bundle repo${from:+ and OS media}) ..." >&2
    dir="" mnt=""
    case "$media" in
        --media=*) dir=${media#--media=} ;;
        --iso=*)
            mnt=$(mktemp -d /tmp/airgap-media.XXXXXX)
            if ! mount -o loop,ro "${media#--iso=}" "$mnt"; then
                rmdir "$mnt"
                echo "error: cannot mount ${media#--iso=} to install python3 from it; install python3 and run $0 again" >&2
                return 2
            fi
            dir=$mnt ;;
        *)
            if [ -b /dev/sr0 ]; then
                mnt=$(mktemp -d /tmp/airgap-media.XXXXXX)
                if mount -o ro /dev/sr0 "$mnt" 2>/dev/null; then dir=$mnt; else rmdir "$mnt"; mnt=""; fi
            fi ;;
    esac
    keys=""
    if [ -n "$dir" ] && [ -d "$dir/repodata" ]; then
        for k in "$dir"/RPM-GPG-KEY-*; do
            if [ -f "$k" ]; then keys="$keys${keys:+ }file://$k"; fi
        done
    else
        dir=""
    fi
    rc=0
    if [ -n "$dir" ]; then
        ${AIRGAP_YUM:-yum} -y --disablerepo='*' \
            --repofrompath="airgap-bootstrap,file://$here/repo" --enablerepo=airgap-bootstrap \
            --setopt=airgap-bootstrap.gpgcheck=0 \
            --repofrompath="airgap-media,file://$dir" --enablerepo=airgap-media \
            --setopt=airgap-media.gpgcheck=$([ -n "$keys" ] && echo 1 || echo 0) \
            --setopt="airgap-media.gpgkey=$keys" install python3 >&2 || rc=$?
    else
        ${AIRGAP_YUM:-yum} -y --disablerepo='*' \
            --repofrompath="airgap-bootstrap,file://$here/repo" --enablerepo=airgap-bootstrap \
            --setopt=airgap-bootstrap.gpgcheck=0 install python3 >&2 || rc=$?
    fi
    if [ -n "$mnt" ]; then
        umount "$mnt" && rmdir "$mnt"
    fi
    if [ $rc -ne 0 ]; then
        echo "error: installing python3 from $here/repo${dir:+ and $dir} failed (see the yum output above); give the OS media with --iso or --media, or install python3, and run $0 again" >&2
        return 2
    fi
}
py=$(find_python || true)
if [ -z "$py" ]; then
    if [ "${AIRGAP_NO_PYTHON_INSTALL:-}" = 1 ]; then
        echo "error: no python3 found and AIRGAP_NO_PYTHON_INSTALL=1" >&2
        exit 2
    fi
    cmd=$(command_of "$@")
    if ! changes_hosts "$cmd"; then
        echo "error: python3 is missing on this host. '$0 $cmd' changes nothing, so it does not install it." >&2
        echo "To proceed: run 'sh $0 install [options]' (or another command that changes hosts: reset, add-node, remove-node, node apply): it first installs python3 from this bundle's repo/ and the OS media (--iso FILE or --media DIR; default: the disc in /dev/sr0); or install python3 from the OS media yourself (yum install python3) and run '$0 $cmd' again." >&2
        exit 2
    fi
    install_python "$@" || exit 2
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

sys.dont_write_bytecode = True  # no __pycache__ in the bundle: the next run's check would refuse it as unlisted
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from installer.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
