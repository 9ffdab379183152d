udp dport 11211
