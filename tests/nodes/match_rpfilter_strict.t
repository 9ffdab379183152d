fib saddr . mark . iif oif missing
