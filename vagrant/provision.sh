#!/usr/bin/env bash
# Provisions one nftc test VM: installs nftc the way the README says, then runs the whole test suite as root.
#
# Debian and Ubuntu follow the README word for word: `scripts/setup.sh test`. The README's set-up is apt-only, so
# on Rocky 9 this script does the dnf equivalent itself (packages, venv, editable install, pytest).
# CI=true everywhere: a kernel test that cannot run fails instead of skipping, so a green run means it ran.
#
# Usage (Vagrant runs it as root): provision.sh [REPO_DIR]   (default /nftc, where the Vagrantfile syncs the repo)
set -euo pipefail

readonly DEFAULT_REPO=/nftc
readonly OS_RELEASE=${OS_RELEASE:-/etc/os-release}  # overridable only so the detection can be checked off-VM
readonly MIN_PYTHON=(3 9)
# All of these are in Rocky 9's BaseOS or AppStream; EPEL is only a fallback for any a mirror lacks.
readonly RHEL_PACKAGES=(nftables python3-nftables python3 python3-pip iproute nmap memcached socat util-linux openssh-server)
# `setup.sh test` also installs ufw (the article's ufw recipe is compared with nftc's policy) and fail2ban
# (tests/test_fail2ban.py); on Rocky they exist only in EPEL, so they are installed when EPEL has them and
# reported when not, never a reason to stop.
readonly RHEL_EPEL_EXTRAS=(ufw fail2ban-server)

main() {
    local repo=${1:-$DEFAULT_REPO}
    require_root
    [[ -f "$repo/pyproject.toml" ]] || die "no nftc checkout at $repo (is the rsync synced folder up?)"
    cd "$repo"
    export CI=true
    describe_machine
    case "$(os_family)" in
        debian) test_the_readme_way ;;
        rhel) test_the_dnf_way ;;
        *) die "unsupported distribution: $(os_field PRETTY_NAME); expected Debian, Ubuntu or Rocky" ;;
    esac
    log "all tests passed on $(os_field PRETTY_NAME)"
}

log() { printf '==> nftc: %s\n' "$*"; }

die() {
    printf '==> nftc: error: %s\n' "$*" >&2
    exit 1
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die "run as root: the kernel tests need root and network namespaces"
}

# One field of os-release, read in a subshell so its variables do not leak into this script.
os_field() {
    # shellcheck disable=SC1090  # os-release exists on every distribution this script supports
    (. "$OS_RELEASE" && printf '%s' "${!1:-}")
}

# "debian" for Debian and Ubuntu, "rhel" for Rocky (and other RHEL rebuilds), "" otherwise.
os_family() {
    local id like
    id=$(os_field ID)
    like=$(os_field ID_LIKE)
    case " $id $like " in
        *" debian "*) echo debian ;;
        *" rhel "*) echo rhel ;;
        *) echo "" ;;
    esac
}

# The versions that explain a failure, printed before anything can fail.
describe_machine() {
    log "machine: $(os_field PRETTY_NAME), kernel $(uname -r), $(nproc) CPUs"
    log "/usr/bin/python3: $(/usr/bin/python3 --version 2>&1 || echo 'not installed yet')"
}

test_the_readme_way() {
    [[ -x scripts/setup.sh ]] || die "scripts/setup.sh is missing or not executable: the README's set-up script"
    log "Debian/Ubuntu: running the README's set-up, scripts/setup.sh test"
    scripts/setup.sh test
}

test_the_dnf_way() {
    install_rhel_packages
    require_python /usr/bin/python3
    log "$(nft --version); $(rpm -q python3-nftables)"
    make_venv /usr/bin/python3 .venv
    log "Rocky: running the whole test suite as root (CI=true, kernel tests cannot skip)"
    .venv/bin/python -m pytest -q
}

install_rhel_packages() {
    local missing extras
    mapfile -t missing < <(packages_not_in_enabled_repos "${RHEL_PACKAGES[@]}" "${RHEL_EPEL_EXTRAS[@]}")
    if ((${#missing[@]})); then
        log "not in the enabled repositories: ${missing[*]}; enabling EPEL (and CRB, which EPEL needs)"
        dnf install -y epel-release
        crb enable  # /usr/bin/crb comes with epel-release on EL9
    fi
    dnf install -y "${RHEL_PACKAGES[@]}"
    mapfile -t extras < <(packages_not_in_enabled_repos "${RHEL_EPEL_EXTRAS[@]}")
    if ((${#extras[@]})); then
        log "warning: not available even from EPEL: ${extras[*]}; the tests that need them will say so"
    else
        dnf install -y "${RHEL_EPEL_EXTRAS[@]}"
    fi
}

# Prints, one a line, the packages that are neither installed nor available from the enabled repositories.
packages_not_in_enabled_repos() {
    local package
    for package in "$@"; do
        rpm -q "$package" >/dev/null 2>&1 || dnf -q list --available "$package" >/dev/null 2>&1 || echo "$package"
    done
}

require_python() {
    local python=$1
    "$python" -c "import sys; sys.exit(sys.version_info < (${MIN_PYTHON[0]}, ${MIN_PYTHON[1]}))" \
        || die "$python is $("$python" --version 2>&1); nftc needs Python >= ${MIN_PYTHON[0]}.${MIN_PYTHON[1]}"
}

# The venv sees the distribution's python3-nftables (--system-site-packages); nftc goes in editable with its tests.
make_venv() {
    local python=$1 venv=$2
    log "venv $venv from $python, nftc installed editable with [test]"
    "$python" -m venv --system-site-packages "$venv"
    # Rocky 9's bundled pip (21.2) cannot install a pyproject-only project in editable mode (PEP 660 needs >= 21.3).
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e '.[test]'
    "$venv/bin/python" -c "import nftables" || die "the venv cannot import nftables: python3-nftables is missing"
}

# Sourcing the file (to check one function) defines everything and runs nothing.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
