set echo_v4 {
	type ipv4_addr
	size 65535
	flags dynamic,timeout
	timeout 1m
	comment "per-source meter"
}
