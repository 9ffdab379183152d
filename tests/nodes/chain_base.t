chain input {
	type filter hook input priority filter; policy drop;
	iif "lo" goto target comment "loopback"
}
