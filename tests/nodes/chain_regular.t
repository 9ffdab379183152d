chain zone_lan {
	comment "zone lan"
	meta l4proto . th dport vmap @ports_lan comment "per port"
	counter name "drop/no-zone" drop comment "no rule"
}
