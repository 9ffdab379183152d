iif "lo"
