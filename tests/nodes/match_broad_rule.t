meta l4proto != { tcp, udp }
