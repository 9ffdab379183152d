#!/usr/bin/env bash
# Set up nftc on Debian 12 / Ubuntu 22.04+ as root, then run the demo or the tests. Safe to run twice.
#   scripts/setup.sh demo        install what is missing, compile + check + lab the single-server policy
#   scripts/setup.sh test [ARGS] install what is missing, run the whole test suite (ARGS go to pytest)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
  demo|test) shift ;;
  *) echo "usage: scripts/setup.sh demo|test [pytest args]" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (sudo scripts/setup.sh $mode): it installs packages and the tests use network namespaces" >&2
  exit 1
fi

# The distro interpreter: python3-nftables is built for it, not for a pyenv/conda python3 first on PATH.
packages=(python3 python3-venv python3-nftables nftables iproute2 util-linux)
[ "$mode" = test ] && packages+=(nmap memcached socat ufw iputils-ping sudo systemd man-db fail2ban openssh-server procps)
# NFTC_FRESHROOT=1 (.ci/run): tests/test_freshroot.py also builds the Debian package and fresh Debian 12 roots.
freshroot=$([ "$mode" = test ] && [ "${NFTC_FRESHROOT:-}" = 1 ] && echo yes || true)
[ -n "$freshroot" ] && packages+=(mmdebstrap lintian dpkg-dev git)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
# The tests need the programs of fail2ban, memcached and openssh-server, never their services: fail2ban's would
# start its sshd jail, which adds its own rules to this machine's firewall, the moment the package is installed, and
# an sshd the machine did not have would open port 22 (tests/test_ansible.py starts sshds of its own, inside
# namespaces). So no service starts during this install (Debian's policy-rc.d answering 101, unless the machine has
# its own), and those, when this script installed them, are not started at boot either (package => units).
declare -A daemons=([fail2ban]="fail2ban.service" [memcached]="memcached.service" [openssh-server]="ssh.service ssh.socket")
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT  # also when apt fails (the script exits on any error)
  fi
  apt-get -o DPkg::Lock::Timeout=600 update -qq  # another apt (unattended-upgrades) may hold the lock a while
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if trap -p EXIT | grep -q policy-rc.d; then  # ours: gone before `exec pytest`, which runs no EXIT trap
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  fi
  for package in "${!daemons[@]}"; do
    if [[ " ${missing[*]} " == *" $package "* ]] && command -v systemctl >/dev/null; then
      for unit in ${daemons[$package]}; do systemctl disable --quiet "$unit" 2>/dev/null || true; done
    fi
  done
fi

if [ -n "$freshroot" ] && ! dpkg-checkbuilddeps debian/control 2>/dev/null; then  # the list: debian/control
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 build-dep -y -qq --no-install-recommends ./ >/dev/null
fi

venv=.venv
if ! "$venv/bin/python" -c 'import nftables, nftc' 2>/dev/null; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
fi
"$venv/bin/python" -m pip install -q -e '.[test]'

if [ "$mode" = demo ]; then
  set -x
  "$venv/bin/nftc" compile rulesets/zimbra-single.zfw
  "$venv/bin/nftc" check rulesets/zimbra-single.zfw
  "$venv/bin/nftc" lab rulesets/zimbra-single.zfw
else
  exec "$venv/bin/python" -m pytest -q "$@"
fi
