meta l4proto tcp
