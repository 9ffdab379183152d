chain early {
	type filter hook input priority filter - 5; policy accept;
}
