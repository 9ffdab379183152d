limit rate 10/minute burst 5 packets
