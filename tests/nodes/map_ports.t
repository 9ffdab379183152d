map ports_lan {
	type inet_proto . inet_service : verdict
	flags interval
	elements = { tcp . 22 : goto target,
		     udp . 8000-8010 : goto target }
}
