#!/usr/bin/env bash
# Provisions the controller of the Vagrant cluster (vagrant/cluster/Vagrantfile) and runs the roll-out twice, as
# tests/test_ansible.py does in namespaces. Usage (as root): controller.sh REPO_DIR
#  - an admin address, 10.9.0.10/24 and fd00:9::10/64, on the cluster network (the policy's `admins` zone);
#  - ansible-core in a venv (/opt/nftc-ansible), the cluster key synced from the host;
#  - the policy: rulesets/zimbra-cluster.zfw plus vagrant/cluster/management.zfw (Vagrant's own SSH);
#  - ansible-playbook deploy/ansible/site.yml twice: the second run must report changed=0 on every host.
# The .deb must exist: build it on the host first (scripts/build-deb.sh vagrant/cluster/), see vagrant/cluster/README.md.
set -euo pipefail
repo=${1:-/nftc}
cd "$repo"
deb=$(ls vagrant/cluster/nftc_*_all.deb 2>/dev/null | sort -V | tail -n 1)
[ -n "$deb" ] || { echo "controller.sh: no vagrant/cluster/nftc_*_all.deb: run scripts/build-deb.sh vagrant/cluster/ on the host first" >&2; exit 1; }

device=$(ip -o -4 addr show to 10.0.0.10 | awk '{print $2; exit}')
ip -4 addr replace 10.9.0.10/24 dev "$device"
ip -6 addr replace fd00:9::10/64 dev "$device" nodad
ip -4 route replace 10.0.0.0/24 dev "$device" src 10.9.0.10
ip -6 route replace fd00:10::/64 dev "$device" src fd00:9::10

export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends python3-venv openssh-client >/dev/null
[ -x /opt/nftc-ansible/bin/ansible-playbook ] || {
  python3 -m venv /opt/nftc-ansible
  /opt/nftc-ansible/bin/pip install -q "ansible-core>=2.14,<3"
}

work=/root/nftc-cluster
install -d -m 0700 "$work"
install -m 0600 /tmp/nftc-cluster-key "$work/key"
cat rulesets/zimbra-cluster.zfw vagrant/cluster/management.zfw > "$work/policy.zfw"
cat > "$work/ansible.cfg" <<CFG
[defaults]
private_key_file = $work/key
host_key_checking = False
[connection]
pipelining = True
CFG
export ANSIBLE_CONFIG=$work/ansible.cfg
run() {
  /opt/nftc-ansible/bin/ansible-playbook -i vagrant/cluster/inventory.yml deploy/ansible/site.yml \
    -e "nftc_policy=$work/policy.zfw nftc_deb=$repo/$deb" | tee "$work/run$1.log"
}
run 1
run 2
if grep -E '^\S+ +: ' "$work/run2.log" | grep -vq 'changed=0 '; then
  echo "controller.sh: the second run changed something (see $work/run2.log)" >&2
  exit 1
fi
echo "==> nftc: cluster rolled out; the second run changed nothing"
