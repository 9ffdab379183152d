chain output {
	type filter hook output priority filter + 10; policy accept;
	accept
}
