meta l4proto . th dport { tcp . 22, udp . 53 }
