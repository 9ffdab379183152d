counter name "lan/ssh/r1"
