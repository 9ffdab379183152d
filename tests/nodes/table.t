table inet small {
	comment "compiled by nftc"
	counter drop/no-zone {
	}

	set dyn_admins_v4 {
		type ipv4_addr
		flags interval
	}

	chain input {
		type filter hook input priority filter; policy drop;
		ip saddr @dyn_admins_v4 accept
		counter name "drop/no-zone" drop
	}
}
