set protected_tcp {
	type inet_service
	flags interval
	comment "local-only and admin ports"
	elements = { 22,
		     7025-7026 }
}
