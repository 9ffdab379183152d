set dyn_admins_v4 {
	type ipv4_addr
	flags interval
	comment "zone admins: added at run time"
}
