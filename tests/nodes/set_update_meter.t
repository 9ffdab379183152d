update @echo_v4 { ip saddr limit rate 5/second burst 10 packets }
