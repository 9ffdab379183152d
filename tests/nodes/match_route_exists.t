fib saddr . mark oif exists
