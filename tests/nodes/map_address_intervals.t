map zones_v4 {
	type ipv4_addr : verdict
	flags interval
	comment "source -> most specific zone"
	elements = { 0.0.0.0-9.255.255.255 : goto target,
		     10.0.0.0/8 : goto target,
		     192.168.1.7 : goto target,
		     192.168.1.9-192.168.1.12 : goto target }
}
