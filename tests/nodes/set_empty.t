set plain_v6 {
	type ipv6_addr
}
