udp dport 11211 counter name "drop/memcached-udp" drop comment "memcached UDP: never outside localhost"
