#!/usr/bin/env bash
# Provisions one server of the Vagrant cluster (vagrant/cluster/Vagrantfile): what the namespace lab of
# tests/test_ansible.py gives each host. Usage: host.sh IPV4 IPV6
#  - its IPv6 address (Vagrant sets the IPv4 one) on the cluster network, and an on-link route to the admins'
#    network 10.9.0.0/24, where the controller VM also has an address;
#  - the controller's public key (synced from the host) for the vagrant user, who may sudo;
#  - nothing else: the controller's playbook installs nftc (the .deb) and rolls the policy out.
# Addresses added with `ip` do not survive a reboot: run `vagrant provision` again after one.
set -euo pipefail
ipv4=$1 ipv6=$2
device=$(ip -o -4 addr show to "$ipv4" | awk '{print $2; exit}')
[ -n "$device" ] || { echo "host.sh: no interface has $ipv4" >&2; exit 1; }
ip -6 addr replace "$ipv6/64" dev "$device" nodad
ip -4 route replace 10.9.0.0/24 dev "$device"
ip -6 route replace fd00:9::/64 dev "$device"
install -d -m 0700 -o vagrant -g vagrant /home/vagrant/.ssh
key=$(cat /tmp/nftc-cluster-key.pub)
grep -qxF "$key" /home/vagrant/.ssh/authorized_keys 2>/dev/null || echo "$key" >> /home/vagrant/.ssh/authorized_keys
chown vagrant:vagrant /home/vagrant/.ssh/authorized_keys
