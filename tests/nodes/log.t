log prefix "zfw drop: r3 "
