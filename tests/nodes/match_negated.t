iif != "lo"
