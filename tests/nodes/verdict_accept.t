accept
