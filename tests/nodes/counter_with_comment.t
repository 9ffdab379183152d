counter lan/ssh/r1 {
	comment "site.zfw:7 r1"
}
