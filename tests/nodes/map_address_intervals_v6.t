map zones_v6 {
	type ipv6_addr : verdict
	flags interval
	elements = { ::1 : goto target,
		     ::ffff:127.0.0.0/120 : goto target,
		     fd00::/120 : goto target }
}
