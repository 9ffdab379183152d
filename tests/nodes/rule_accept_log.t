limit rate 10/minute burst 5 packets log prefix "zfw accept: r2 " comment "site.zfw:5"
