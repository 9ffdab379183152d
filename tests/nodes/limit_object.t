limit limit_r2 {
	rate over 100/second burst 200 packets
}
