limit rate over 100/second burst 200 packets
