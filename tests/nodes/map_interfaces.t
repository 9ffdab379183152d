map zones_iface {
	type ifname : verdict
	flags interval
	comment "interface -> zone"
	elements = { "eth9" : goto target,
		     "vlan*" : goto target }
}
