meta l4proto . th dport vmap @ports_lan
